"""Every benchmark that takes ``--model FOLDER`` refuses a folder that is not an export in one
line, exit status 2, before doing any work."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench.service import memory as memory_bench
from bench.service import openai_memory
from bench.service import soak as soak_bench
from bench.stream import noise

Main = Callable[[Sequence[str]], object]

COMMANDS: dict[str, tuple[Main, list[str]]] = {
    "python -m bench tune": (bench_main.main, ["tune", "--speech", "speech"]),
    "python -m bench noise": (noise.main, []),
    "python -m bench memory_bench": (memory_bench.main, []),
    "python -m bench soak_bench": (soak_bench.main, []),
    "python -m bench openai_memory": (openai_memory.main, []),
}


def not_exports(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Folders that are not exports, with what the answer must say."""
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"format_version": 1,\n "name": ')
    return {
        "empty": (empty, "no manifest"),
        "broken": (broken, "unreadable manifest"),
        "missing": (tmp_path / "nonesuch", "no manifest"),
    }


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_that_is_not_an_export_is_one_line_and_exit_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main, args = COMMANDS[command]
    for folder, reason in not_exports(tmp_path).values():
        with pytest.raises(SystemExit) as exited:
            main([*args, "--model", str(folder)])
        assert exited.value.code == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1 and err.endswith("\n"), err
        assert f"--model {folder}" in err and reason in err and "Traceback" not in err


def test_bench_tune_answers_in_one_line_from_the_shell(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "tune", "--model", str(tmp_path)]
    done = subprocess.run(
        [*command, "--speech", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"python -m bench tune: error: --model {tmp_path}: {tmp_path / 'manifest.json'}: "
        "no manifest: is this an asr-export output folder?"
    ]
