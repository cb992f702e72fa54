"""``facestage say``, ``facestage chat`` and ``facestage talk``: speech and the virtual employee."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, InputError

if TYPE_CHECKING:
    from ..dialogue import Employee, Profile


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("say", help="synthesize speech to a WAV file (+ viseme timeline)",
                       description="English with the piper 'joe' voice, Mandarin with Kokoro (neural), chosen per "
                                   "sentence from the text unless --lang or an espeak:NAME voice is given.")
    p.add_argument("text", help="what to say")
    p.add_argument("-o", "--output", required=True, help="output .wav file")
    p.add_argument("--voice", default=None, help="piper:joe, kokoro:zf_xiaobei|zm_yunxi|… (Mandarin) "
                   "or espeak:NAME (e.g. espeak:fr)")
    p.add_argument("--lang", choices=("en", "zh"), default=None, help="force the language (default: from the text)")
    p.add_argument("--visemes", default=None, help="also write the phoneme/viseme timeline as JSON here")
    p.add_argument("--fps", type=float, default=None, help="with --visemes: add ARKit mouth weights per frame")
    p.set_defaults(func=_say)

    for name, helptext in (("chat", "talk to a brand's virtual employee in the terminal (reads stdin)"),
                           ("talk", "render the avatar speaking the answer to a question, as an MP4")):
        q = sub.add_parser(name, help=helptext, description=helptext)
        q.add_argument("--brand", default="demo", help="profile id (default: demo, installed on first use)")
        q.add_argument("--profiles", default=None, help="profile database (default $FACESTAGE_PROFILES or "
                                                        "~/.local/share/facestage/profiles.sqlite3)")
        q.add_argument("--llm-url", default=os.environ.get("FACESTAGE_LLM_URL"),
                       help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 (default: the profile's "
                            "llm settings, else retrieval only)")
        q.add_argument("--llm-model", default=os.environ.get("FACESTAGE_LLM_MODEL", "default"))
        q.add_argument("--llm-key", default=os.environ.get("FACESTAGE_LLM_KEY"))
        if name == "chat":
            q.add_argument("--speak", action="store_true", help="also synthesize each reply (WAV per turn)")
            q.add_argument("--speak-dir", default=None, help="with --speak: where to write reply WAVs")
            q.add_argument("--session", default="terminal", help="session id (memory is per session)")
            q.set_defaults(func=_chat)
        else:
            q.add_argument("question", help="the customer's question")
            q.add_argument("-o", "--output", required=True, help="output .mp4")
            q.add_argument("--avatar", default=None, help="avatar name (default: the profile's)")
            q.add_argument("--size", type=int, default=512, help="video size in pixels (square)")
            q.add_argument("--fps", type=float, default=25.0)
            q.set_defaults(func=_talk)


def _say(args: argparse.Namespace) -> int:
    from ..speech import TTSClient, join_chunks
    from ..speech.visemes import viseme_frames
    from ..speech.wavio import write_wav

    if not args.output.lower().endswith(".wav"):
        raise InputError(f"output must be a .wav file, got {args.output!r}")
    with TTSClient() as tts:
        t0 = time.perf_counter()
        chunks = []
        first = None
        for chunk in tts.synthesize(args.text, voice=args.voice, lang=args.lang):
            first = first if first is not None else time.perf_counter() - t0
            chunks.append(chunk)
    utt = join_chunks(chunks)
    write_wav(args.output, utt.audio, utt.sample_rate)
    if args.visemes:
        doc = {
            "sample_rate": utt.sample_rate, "duration_s": utt.duration_s,
            "chunks": [{"text": c.text, "lang": c.lang, "engine": c.engine, "offset_s": c.offset_s,
                        "duration_s": c.duration_s, "transcript": c.transcript} for c in chunks],
            "phonemes": [[round(s, 4), round(e, 4), p] for s, e, p in utt.phonemes],
            "visemes": [[round(s, 4), round(e, 4), v] for s, e, v in utt.visemes],
        }
        if args.fps:
            doc["fps"] = args.fps
            doc["frames"] = viseme_frames(utt.visemes, args.fps, utt.duration_s)
        Path(args.visemes).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    engines = ", ".join(sorted({c.engine for c in chunks}))
    print(f"{args.output}: {utt.duration_s:.2f} s at {utt.sample_rate} Hz, {len(chunks)} sentence(s) "
          f"({engines}), first audio after {first * 1000:.0f} ms", file=sys.stderr)
    return 0


def _profile(args: argparse.Namespace) -> Profile:
    from ..dialogue import ProfileStore

    store = ProfileStore(args.profiles)
    try:
        if args.brand == "demo":
            store.ensure_demo()
        return store.get(args.brand)
    finally:
        store.close()


def _employee(args: argparse.Namespace, profile: Profile) -> Employee:
    from ..dialogue import Employee, OpenAIChatBackend

    backend = None
    if args.llm_url:
        backend = OpenAIChatBackend(args.llm_url, args.llm_model, args.llm_key)
    return Employee(profile, backend=backend)


def _chat(args: argparse.Namespace) -> int:
    from ..speech import join_chunks
    from ..speech.text import detect_lang
    from ..speech.wavio import write_wav

    profile = _profile(args)
    emp = _employee(args, profile)
    tts = None
    speak_dir = None
    if args.speak:
        from ..speech import TTSClient
        from ..speech.voices import profile_voice

        tts = TTSClient(voice=profile_voice(profile))
        tts.warmup(tuple(profile.languages))  # load the voices now, not on the first question
        speak_dir = Path(args.speak_dir or Path.cwd() / "chat-audio")
        speak_dir.mkdir(parents=True, exist_ok=True)
    interactive = sys.stdin.isatty()
    turn = 0
    try:
        print(f"{profile.name}: {emp.greeting()}", flush=True)
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in ("/quit", "/exit", "quit", "exit"):
                break
            turn += 1
            t0 = time.perf_counter()
            print(f"{profile.name}: ", end="", flush=True)
            chunks, first_audio = [], None
            for sentence in emp.reply_stream(text, args.session):
                print(sentence, end="" if detect_lang(sentence) == "zh" else " ", flush=True)
                if tts is not None:  # speak each sentence as soon as it exists (LLM replies stream)
                    for chunk in tts.synthesize(sentence):
                        first_audio = first_audio if first_audio is not None else time.perf_counter() - t0
                        chunks.append(chunk)
            print(flush=True)
            if tts is not None and speak_dir is not None and chunks:
                utt = join_chunks(chunks)
                path = speak_dir / f"turn{turn:03d}.wav"
                write_wav(path, utt.audio, utt.sample_rate)
                print(f"  [audio {utt.duration_s:.1f} s → {path}, first audio {first_audio * 1000:.0f} ms after "
                      "the question]", flush=True)
    finally:
        if tts is not None:
            tts.close()
    return 0


def _talk(args: argparse.Namespace) -> int:
    try:
        from ..avatar import load_avatar
        from ..rendering import RenderThread
    except ImportError as exc:  # the avatar renderer is a separate component
        raise ConfigError(f"talk needs the avatar renderer, which is not available: {exc}") from exc
    from ..speech import TTSClient
    from ..speech.talk import render_talk
    from ..speech.voices import profile_voice

    if not 64 <= args.size <= 2048:
        raise InputError("--size must be between 64 and 2048")
    if not 1 <= args.fps <= 120:
        raise InputError("--fps must be between 1 and 120")
    if Path(args.output).suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise InputError(f"talk output must be .mp4, .mkv or .mov, got {Path(args.output).name!r}")
    profile = _profile(args)
    avatar = load_avatar(_avatar_name(args.avatar or profile.avatar))  # fail fast on a bad avatar name
    emp = _employee(args, profile)
    reply = emp.answer(args.question, "talk")
    with TTSClient(voice=profile_voice(profile)) as tts:
        utt = tts.synthesize_all(reply.text)
    rt = RenderThread(size=args.size)
    try:
        t0 = time.perf_counter()
        res = render_talk(utt, args.output, avatar, rt, fps=args.fps, size=args.size,
                          background=profile.background_rgb())
    finally:
        rt.close()
    print(f"{profile.name}: {reply.text}", flush=True)
    print(f"{res.path}: {res.frames} frames at {res.fps:g} fps, {res.duration_s:.2f} s of audio, rendered in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _avatar_name(name: str) -> str:
    """'default' means the first built-in avatar."""
    if name != "default":
        return name
    from ..avatar import list_avatars

    return list_avatars()[0]["name"]
