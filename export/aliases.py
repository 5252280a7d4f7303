"""The model guide: aliases for the checkpoints we recommend, and the ones we refuse.

Every model here wants 16 kHz mono audio (the server resamples); every one is a
CTC fine-tune. Pretrained-only checkpoints have no CTC head: they produce
features, not text, and are refused with the fine-tuned alternatives below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alias:
    """One row of the model guide."""

    name: str
    hub_id: str
    params: str
    domain: str
    best_use: str
    warning: str
    needs_language: bool = False


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias(
            "base",
            "facebook/wav2vec2-base-960h",
            "95M",
            "LibriSpeech 960 h: read English audiobooks",
            "fast prototyping, CPU serving",
            "clean read speech only: noisy, conversational or accented audio degrades sharply",
        ),
        Alias(
            "english",
            "facebook/wav2vec2-large-960h-lv60-self",
            "317M",
            "LibriLight 60k h pretraining + self-training, LibriSpeech 960 h fine-tune",
            "English on clean audio, best accuracy of the English models",
            "same read-audiobook domain as base: telephone, far-field and noisy speech degrade",
        ),
        Alias(
            "multilingual",
            "voidful/wav2vec2-xlsr-multilingual-56",
            "300M",
            "Common Voice, 56 languages (XLSR-53 300M layout, the same as XLS-R 300m)",
            "several languages with one model",
            "Common Voice read prompts; any XLS-R 300m CTC fine-tune for your language "
            "(pass its hub id) is usually more accurate than one shared model",
        ),
        Alias(
            "low-resource",
            "facebook/mms-1b-all",
            "965M",
            "MMS: 1,162 languages, mostly read Bible recordings",
            "languages no other checkpoint covers (needs --language, an ISO 639-3 code)",
            "religious read speech: conversational speech and domain words degrade; "
            "1B parameters: slow on CPU",
            needs_language=True,
        ),
        Alias(
            "sota",
            "hf-audio/wav2vec2-bert-CV16-en",
            "600M",
            "w2v-BERT 2.0 (4.5M h, 143 languages) fine-tuned on Common Voice 16 English",
            "best English accuracy on varied speakers and accents; GPU serving",
            "fbank input and 600M parameters: needs a GPU for many streams; "
            "Common Voice prompts, not spontaneous speech",
        ),
    )
}


PRETRAINED_ONLY: dict[str, str] = {
    "facebook/wav2vec2-base": "base (facebook/wav2vec2-base-960h)",
    "facebook/wav2vec2-large": "english (facebook/wav2vec2-large-960h-lv60-self)",
    "facebook/wav2vec2-large-lv60": "english (facebook/wav2vec2-large-960h-lv60-self)",
    "facebook/wav2vec2-large-xlsr-53": "multilingual (voidful/wav2vec2-xlsr-multilingual-56)",
    "facebook/wav2vec2-xls-r-300m": "multilingual (an XLS-R 300m CTC fine-tune)",
    "facebook/wav2vec2-xls-r-1b": "multilingual (an XLS-R CTC fine-tune)",
    "facebook/wav2vec2-xls-r-2b": "multilingual (an XLS-R CTC fine-tune)",
    "facebook/mms-300m": "low-resource (facebook/mms-1b-all with --language)",
    "facebook/mms-1b": "low-resource (facebook/mms-1b-all with --language)",
    "facebook/w2v-bert-2.0": "sota (hf-audio/wav2vec2-bert-CV16-en)",
    "facebook/hubert-base-ls960": "facebook/hubert-large-ls960-ft",
    "facebook/hubert-large-ll60k": "facebook/hubert-large-ls960-ft",
    "facebook/data2vec-audio-base": "facebook/data2vec-audio-base-960h",
    "facebook/data2vec-audio-large": "facebook/data2vec-audio-large-960h",
}
"""Well-known pretrained-only hub ids and the fine-tuned checkpoint to use instead.
Refused by name before anything is downloaded."""


FINE_TUNED_SUGGESTION = (
    "fine-tuned CTC alternatives: base (facebook/wav2vec2-base-960h), "
    "english (facebook/wav2vec2-large-960h-lv60-self), multilingual "
    f"({ALIASES['multilingual'].hub_id}), low-resource (facebook/mms-1b-all --language CODE), "
    f"sota ({ALIASES['sota'].hub_id})"
)


def format_table() -> str:
    """The model guide as a plain-text table for ``asr-export --list``."""
    rows = [("alias", "checkpoint", "params", "trained on", "best for", "watch out")]
    rows += [
        (a.name, a.hub_id, a.params, a.domain, a.best_use, a.warning) for a in ALIASES.values()
    ]
    lines: list[str] = []
    for row in rows:
        lines.append(f"{row[0]:<13} {row[1]:<42} {row[2]:>5}")
        if row is rows[0]:
            lines.append("-" * 62)
            continue
        lines.append(f"{'':<13} trained on: {row[3]}")
        lines.append(f"{'':<13} best for:   {row[4]}")
        lines.append(f"{'':<13} watch out:  {row[5]}")
    lines.append("")
    lines.append(
        "All models take 16 kHz mono audio (the server resamples anything from 8 to 192 kHz).\n"
        "Only CTC fine-tuned checkpoints work: pretrained-only ones (wav2vec2-base, xls-r-300m,\n"
        "mms-1b, w2v-bert-2.0) have no CTC head and are refused. Accuracy falls outside a\n"
        "model's training domain: test on your own audio before you choose.\n"
        "Any Hugging Face id or local save_pretrained folder of a supported family also works:\n"
        "Wav2Vec2ForCTC, HubertForCTC, Data2VecAudioForCTC, Wav2Vec2BertForCTC."
    )
    return "\n".join(lines)
