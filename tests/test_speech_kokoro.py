"""Mandarin neural speech: Kokoro-82M int8 through onnxruntime in the TTS worker, measured with Whisper.

One Kokoro worker and one Whisper model serve the whole module (each takes seconds to load).
"""

from __future__ import annotations

import os
import re

import cn2an
import numpy as np
import pytest
from pypinyin import lazy_pinyin

from facestage.errors import ConfigError, InputError
from facestage.speech import TTSClient, join_chunks
from facestage.speech.asr import transcribe
from facestage.speech.kokoro import FETCH_SCRIPT, data_dir, model_path, voice_path
from facestage.speech.visemes import VISEMES
from facestage.speech.voices import resolve
from facestage.speech.zh_text import normalize_zh, split_latin

# Brand sentences with digits, prices, times, quantities and product names (the demo dairy's FAQ facts).
BRAND_SENTENCES = [
    "一升玻璃瓶装全脂牛奶2.5元。",
    "订单满30元免运费，不满30元收取4元配送费。",
    "我们的牧场门店每天早上8点到晚上8点营业。",
    "我们的原味希腊酸奶每100克只含4克天然乳糖。",
    "500克希腊酸奶4元，无乳糖牛奶3元。",
    "晚上10点前下单，第二天早上6点到9点之间送达。",
    "每个玻璃瓶押金5毛。",
    "每周六上午10点有牧场导览，成人8元，儿童免费。",
    "一杯250毫升的全脂牛奶约含160千卡热量。",
    "百灵牧场的切达奶酪熟成十二个月。",
    "我们支持微信支付和支付宝。",
    "请在2到4度冷藏，开封后3天内喝完。",
]
MAX_CER = 0.10


@pytest.fixture(scope="module")
def tts():
    client = TTSClient()
    client.warmup(("zh",))
    yield client
    client.close()


def _canonical(text: str) -> list[str]:
    """What was said, one toneless syllable per character: numbers as Mandarin words, no punctuation.

    Whisper base writes Mandarin in simplified or traditional characters at random and picks among
    homophones with its language model (一升 → 医生, 全脂 → 全支); neither is a fault of the voice, so each
    character is compared by its pinyin. Tone errors are not counted (a limit: Whisper rarely hears tones
    wrong without also getting the character wrong).
    """
    text = cn2an.transform(normalize_zh(text), "an2cn").replace("幺", "一")
    return lazy_pinyin(re.sub(r"[^\u4e00-\u9fff]", "", text))


def _edits(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _cer(tts: TTSClient, voice: str) -> tuple[float, list[tuple[str, str]]]:
    errors = total = 0
    heard = []
    for sentence in BRAND_SENTENCES:
        utt = join_chunks(list(tts.synthesize(sentence, voice=voice, lang="zh")))
        got = transcribe(utt.audio, utt.sample_rate, language="zh").text
        ref, hyp = _canonical(sentence), _canonical(got)
        errors += _edits(ref, hyp)
        total += len(ref)
        heard.append((sentence, got))
    return errors / total, heard


def test_kokoro_mandarin_is_intelligible_to_whisper_and_espeak_is_not(tts):
    kokoro_cer, kokoro_heard = _cer(tts, "kokoro:zf_xiaobei")
    espeak_cer, espeak_heard = _cer(tts, "espeak:cmn")
    print(f"\nCER kokoro:zf_xiaobei {kokoro_cer:.1%}, espeak:cmn {espeak_cer:.1%} on {len(BRAND_SENTENCES)} sentences")
    for (ref, k), (_, e) in zip(kokoro_heard, espeak_heard, strict=True):
        print(f"  {ref} | kokoro: {k} | espeak: {e}")
    assert kokoro_cer <= MAX_CER, kokoro_heard
    assert espeak_cer > 3 * kokoro_cer, "the neural voice must be clearly more intelligible than the fallback"


def test_male_voice_differs_and_is_understood(tts):
    text = BRAND_SENTENCES[0]
    female = join_chunks(list(tts.synthesize(text, voice="kokoro:zf_xiaobei")))
    male = join_chunks(list(tts.synthesize(text, voice={"zh": "kokoro:zm_yunxi"})))
    assert {c.engine for c in male.chunks} == {"kokoro:zm_yunxi"}

    def pitch(audio: np.ndarray, sr: int) -> float:  # median autocorrelation F0 of voiced 40 ms frames
        f0 = []
        n = int(0.04 * sr)
        for i in range(0, len(audio) - n, n):
            x = audio[i : i + n].astype(np.float32)
            if np.sqrt((x**2).mean()) < 1000:
                continue
            ac = np.correlate(x, x, "full")[n - 1 :]
            lo, hi = sr // 400, sr // 70  # 70-400 Hz covers adult voices
            f0.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
        return float(np.median(f0))

    assert pitch(male.audio, male.sample_rate) < 0.8 * pitch(female.audio, female.sample_rate)
    got = _canonical(transcribe(male.audio, male.sample_rate, language="zh").text)
    assert _edits(_canonical(text), got) / len(_canonical(text)) <= 0.2, got


def test_timeline_from_the_duration_tensor_covers_trimmed_audio(tts):
    chunks = list(tts.synthesize("您好，我是百灵牧场乳业的米娅。请拨打800 555 0199。"))
    assert [c.text for c in chunks][0] == "您好，", "clause by clause: the greeting comes first, on its own"
    for c in chunks:
        assert c.engine == "kokoro:zf_xiaobei" and c.sample_rate == 24000 and c.lang == "zh"
        ph = c.phonemes
        assert ph[0][0] == 0.0 and ph[-1][1] == pytest.approx(c.duration_s, abs=1e-6)
        assert all(b[0] == pytest.approx(a[1]) for a, b in zip(ph, ph[1:], strict=False)), "contiguous"
        names = {p for _, _, p in ph}
        assert not names & set("↓→↗↘ ꭧʨʦ"), "tone arrows, gaps and ligatures merged/mapped to IPA"
        assert {v for _, _, v in c.visemes} <= set(VISEMES) and len({v for _, _, v in c.visemes}) >= 4
        # the model's ~0.45 s of leading silence is trimmed: speech starts within 60 ms
        r = np.abs(c.audio.astype(np.float32))
        first_loud = np.argmax(r > 0.05 * r.max()) / c.sample_rate
        assert first_loud < 0.06, first_loud
        # and the trailing ~1 s is cut to the clause pause (≤ 0.25 s) plus a 60 ms tail margin
        last_loud = (len(r) - np.argmax(r[::-1] > 0.02 * r.max())) / c.sample_rate
        assert c.duration_s - last_loud < 0.35, c.duration_s - last_loud
    # the phone number is read digit by digit, as people say it
    assert "jau→" in chunks[-1].transcript and chunks[-1].transcript.count("li↗ŋ") == 3


def test_zh_text_normalisation():
    assert normalize_zh("拨打800 555 0199") == "拨打八零零，五五五，零幺九九"
    assert normalize_zh("早上7:30到9:00，12:05") == "早上七点半到九点，十二点零五分"
    assert normalize_zh("¥12.5，$3") == "十二点五元，三美元"
    assert normalize_zh("2026年") == "二零二六年" and normalize_zh("3-5天") == "三到五天"
    assert split_latin("支持Apple Pay和微信") == [(False, "支持"), (True, "Apple Pay"), (False, "和微信")]
    assert resolve(None, "zh") == ("kokoro", "zf_xiaobei") and resolve("kokoro:zm_yunxi", "en") == ("piper", "joe")
    assert resolve("espeak:fr", "en") == ("espeak", "fr") and resolve(None, "fr") == ("espeak", "fr")


def test_latin_words_in_mandarin_are_spoken_as_english(tts):
    chunk = next(iter(tts.synthesize("我们支持Apple Pay。")))
    assert "Apple" not in chunk.transcript and "æp" in chunk.transcript, chunk.transcript


def test_missing_or_unknown_voices_are_clear_errors(tts, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown voice"):
        list(tts.synthesize("你好。", voice="kokoro:zf_nobody"))
    # a data dir holding the model but no voices: the error names the fetch script
    empty = tmp_path / "data"
    (empty / "kokoro").mkdir(parents=True)
    for f in (model_path(), model_path().with_suffix(".sha256")):
        os.symlink(f, empty / "kokoro" / f.name)
    monkeypatch.setenv("FACESTAGE_DATA", str(empty))
    assert data_dir() == empty / "kokoro"
    with pytest.raises(ConfigError, match=re.escape(FETCH_SCRIPT)):
        voice_path("zm_yunxi")
    with TTSClient() as other:  # the worker inherits the environment: a clear message, then it keeps serving
        with pytest.raises(Exception, match=re.escape(FETCH_SCRIPT)):
            list(other.synthesize("你好。"))
        assert [c.engine for c in other.synthesize("Hello.")] == ["piper:joe"]
