"""The report's ``punctuation`` section: held-out text figures of the fixture punctuation model
(:mod:`.heldout`) and what captions cost in the streaming engine (:mod:`.engine_cost`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common import fixtures
from . import engine_cost, heldout
from .engine_cost import PunctuationPlan


def measure(
    shared: Path, work: Path, tts: list[fixtures.Utterance], plan: PunctuationPlan
) -> dict[str, Any]:
    model = engine_cost.export_punctuation(work)
    return {
        "model": engine_cost.FIXTURE.name,
        "held_out": heldout.held_out_figures(model, plan.segments),
        "engine": engine_cost.measure(shared, work, tts, plan),
    }


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def summary_lines(f: dict[str, Any]) -> list[str]:
    h, e = f["held_out"], f["engine"]
    cpu, accept, base = e["cpu_per_audio_s"], e["accept"], e["base"]
    step = e["final_latency_s"]["caption_step"]
    gains = ", ".join(f"'{c}' {g:+.2f}" for c, g in h["f1_gain"].items())
    return [
        f"punctuation F1 gain over the baseline ({h['segments']} held-out segments): {gains}; "
        f">= {h['accept_gain']} on '.' and ',': {_met(h['gain_met'])}",
        f"captions add {cpu['added_caption']:.5f} CPU s per audio s (process difference "
        f"{cpu['added_process']:.5f}), {e['added_cpu_s_per_1k_words']['caption']:.3f} s per "
        f"1k words; {e['cpu_ratio']:.1%} of {base['model']} int8's "
        f"{base['cpu_per_audio_s']:.4f} (process: {e['cpu_ratio_process']:.1%}); "
        f"<= {accept['cpu_ratio_max']:.0%}: {_met(accept['cpu_met'])}",
        f"latency added to a final: p50 {1000 * step['p50']:.1f} ms, p95 "
        f"{1000 * step['p95']:.1f} ms over {step['n']} finals; p95 <= "
        f"{1000 * accept['final_p95_max_s']:.0f} ms: {_met(accept['final_met'])}",
    ]


def markdown(f: dict[str, Any]) -> str:
    h, e = f["held_out"], f["engine"]
    cpu, base = e["cpu_per_audio_s"], e["base"]
    step, paired = e["final_latency_s"]["caption_step"], e["final_latency_s"]["paired"]
    n_base = "all" if base["utterances"] == e["utterances"] else str(base["utterances"])
    return "\n".join(
        [
            f"Fixture punctuation model `{f['model']}` (`tests/data`), exported by "
            "`asr-export --punctuation`, int8, one thread.",
            "",
            *summary_lines(f),
            "",
            f"**Held-out text** ({h['segments']} segments, {h['words']} words of the Debian "
            "texts the model never saw, `bench.punctuation.corpus`): the trivial baseline "
            "(first word upper-case, a full stop at the end) beside the model through the "
            f"engine's streaming rule (words committed 1 to 3 at a time, lookahead "
            f"{h['lookahead']} words, a segment's unmarked end gets '{h['end_mark']}'). Same "
            "scoring as `python -m bench punctuation --model EXPORT`.",
            "",
            heldout.table(h),
            "",
            f"**In the engine**: the fixture acoustic model (int8, 1 intra-op thread) streams "
            f"{e['utterances']} `speech/dev/tts` utterances ({e['audio_s']:.0f} s, "
            f"{e['words_per_pass']:.0f} words) in 20 ms frames through `Engine.stream()` at the "
            f"server's defaults, `punctuate` off and on, {e['repeats']} interleaved pair(s) of "
            "passes in one process. Caption CPU = thread CPU of the streams' captioning step "
            "plus the batcher thread's; process difference = the with-pass's process CPU minus "
            "the without-pass's (everything, noise included). Final latency = wall time of the "
            "captioning step that carried a final; paired = a final's emission with "
            "punctuation minus the same final's without (inference jitter included). "
            f"Yardstick: random-weight {base['model']} int8, same settings, {n_base} "
            "utterances per repeat, after each pair (median of the passes).",
            "",
            "| figure | value |",
            "| --- | ---: |",
            f"| process CPU s per audio s, without / with | {cpu['without']:.4f} / "
            f"{cpu['with']:.4f} |",
            f"| added CPU s per audio s: caption step + batcher | {cpu['caption_step']:.5f} + "
            f"{cpu['batcher']:.5f} = {cpu['added_caption']:.5f} |",
            f"| added CPU s per audio s: process difference | {cpu['added_process']:.5f} |",
            f"| added CPU s per 1k words: caption / process | "
            f"{e['added_cpu_s_per_1k_words']['caption']:.3f} / "
            f"{e['added_cpu_s_per_1k_words']['process']:.3f} |",
            f"| {base['model']} int8 CPU s per audio s (windows L/C/R s {base['windows']}, "
            f"model input x {base['input_ratio']:.2f}) | {base['cpu_per_audio_s']:.4f} |",
            f"| added / base: caption / process | {e['cpu_ratio']:.2%} / "
            f"{e['cpu_ratio_process']:.2%} |",
            f"| final latency added, caption step p50 / p95 (ms) | {1000 * step['p50']:.1f} / "
            f"{1000 * step['p95']:.1f} (n {step['n']}) |",
            f"| final latency added, paired p50 / p95 (ms) | {1000 * paired['p50']:.1f} / "
            f"{1000 * paired['p95']:.1f} (n {paired['n']}) |",
        ]
    )
