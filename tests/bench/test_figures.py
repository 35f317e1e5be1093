"""Figures in the documentation are generated from `bench/results.json`, never copied.

What a maintainer relies on: the committed README.md and bench/README.md are exactly what
`bench/run --readme` makes from the committed results (so a hand edit, or results committed
without regenerating, fails CI); a default changed in `config/default.toml` turns the figures
measured under the old one into a "stale" notice instead of a quote; a standalone run of one
section rewrites that section's provenance and nothing else. The runner runs for real, as a
subprocess, on a copy of the repository's bench/, config/ and README.md in a temporary git
repository (no benchmark of the real suite runs: a tiny fake section stands in).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bench/run` of that repository, under this interpreter (the project's venv)."""
    return subprocess.run([sys.executable, str(repo / "bench" / "run"), *args], cwd=repo,
                          capture_output=True, text=True, timeout=300, check=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """bench/, config/ and README.md in a fresh git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "bench", repo / "bench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.tmp"))
    shutil.copytree(REPO / "config", repo / "config")
    shutil.copy2(REPO / "README.md", repo / "README.md")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "copy")
    return repo


def set_default(repo: Path, table: str, key: str, value: str) -> None:
    """Change one default in the copy's config/default.toml, as a maintainer would."""
    path = repo / "config" / "default.toml"
    text = path.read_text(encoding="utf-8")
    section = text.index(f"[{table}]\n")
    match = re.compile(rf"^{key} = .*$", re.M).search(text, section)
    assert match, f"{table}.{key} not in default.toml"
    path.write_text(text[:match.start()] + f"{key} = {value}" + text[match.end():],
                    encoding="utf-8")


def sizing(repo: Path) -> str:
    text = (repo / "README.md").read_text(encoding="utf-8")
    return text.split("<!-- figures:sizing -->", 1)[1].split("<!-- /figures -->", 1)[0]


# -- the committed documentation is what the committed results make -------------------------

def test_committed_readmes_are_generated_byte_for_byte() -> None:
    result = subprocess.run([sys.executable, str(RUN), "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, (
        "README.md or bench/README.md differs from what bench/results.json and the templates "
        f"make; run `bench/run --readme`: {result.stderr}")


def test_a_hand_edited_figure_fails_the_check_and_readme_restores_it(copy: Path) -> None:
    original = (copy / "bench" / "README.md").read_bytes()
    text = original.decode("utf-8")
    assert "| vault | store_and_read | 12.34 |" in text  # the committed figure, from results.json
    (copy / "bench" / "README.md").write_text(
        text.replace("| vault | store_and_read | 12.34 |", "| vault | store_and_read | 9.5 |"),
        encoding="utf-8")
    checked = run(copy, "--check")
    assert checked.returncode == 1
    assert "bench/README.md" in checked.stderr and "bench/run --readme" in checked.stderr
    assert run(copy, "--readme").returncode == 0
    assert (copy / "bench" / "README.md").read_bytes() == original
    assert run(copy, "--check").returncode == 0


def test_generated_prose_has_no_hand_numbers_left_in_the_sizing_region() -> None:
    """Every number in the README's sizing region comes out of a placeholder."""
    template = (REPO / "bench" / "figures-sizing.md.tmpl").read_text(encoding="utf-8")
    prose = re.sub(r"\{\{[^}]*\}\}", "", template)
    prose = re.sub(r"`[^`]*`", "", prose)  # names such as `bench/run --only decoding`
    assert re.findall(r"\d+(?:[.,]\d+)? ?(?:%|MB|MiB|GB|GiB|ms|×)", prose) == []


# -- a changed default marks what was measured under the old one stale ----------------------

def test_a_changed_default_marks_the_section_stale_instead_of_quoting_it(copy: Path) -> None:
    # Pretend the committed pipeline figures were measured with batch size 0 (as they once were).
    path = copy / "bench" / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    settings = results["sections"]["pipeline"]["provenance"]["settings"]
    assert settings["transcription.beam_size"] == 5
    settings["transcription.batch_size"] = 0
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    assert run(copy, "--readme").returncode == 0

    # Today's default (batch_size 8) is not what those figures ran with: stale, not quoted.
    stale = "stale: measured with batch size 0, default is 8 — rerun `bench/run --only pipeline`"
    assert stale in sizing(copy)
    headline = re.compile(r"\d\.\d+× \(fastest repeat; per-repeat ratios: median \d\.\d+, "
                          r"range \d\.\d+–\d\.\d+ over \d+ repeats; \d+ of \d+ within the goal "
                          r"≤ 1\.03\)")
    assert not headline.search(sizing(copy))

    # With the default the figures were measured under, the headline is quoted: governance
    # overhead, with the median and spread of the repeats and how many met the goal.
    set_default(copy, "transcription", "batch_size", "0")
    assert run(copy, "--readme").returncode == 0
    quoted = sizing(copy)
    assert "stale: measured with batch size" not in quoted
    assert headline.search(quoted), quoted

    # Changing another default the section ran with makes it stale again, naming that one.
    set_default(copy, "transcription", "beam_size", "3")
    assert run(copy, "--readme").returncode == 0
    assert ("stale: measured with beam 5, default is 3 — rerun `bench/run --only pipeline`"
            in sizing(copy))
    table_rows = [line for line in (copy / "bench" / "README.md").read_text(
        encoding="utf-8").splitlines() if line.startswith("| pipeline | governance_overhead")]
    assert table_rows == ["| pipeline | governance_overhead | (stale) | s | | | stale: measured "
                          "with beam 5, default is 3 — rerun `bench/run --only pipeline` |"]
    # Sections that do not depend on transcription settings are quoted whatever they are.
    assert "| vault | store_and_read | 12.34 |" in (copy / "bench" / "README.md").read_text(
        encoding="utf-8")


def test_a_template_naming_no_benchmark_is_refused_with_the_fix(copy: Path) -> None:
    template = copy / "bench" / "figures-sizing.md.tmpl"
    template.write_text(template.read_text(encoding="utf-8")
                        + "{{ pipelin.governance_overhead }}\n", encoding="utf-8")
    before = (copy / "README.md").read_bytes()
    result = run(copy, "--readme")
    assert result.returncode == 2
    assert "'pipelin', which is no benchmark" in result.stderr
    assert (copy / "README.md").read_bytes() == before  # nothing half-written


# -- a standalone section run keeps the others' provenance ----------------------------------

FAKE = '''"""A tiny fake benchmark: three repeats of one figure, depending on the beam size."""
import sys

from common import emit, figure

SETTINGS = ["transcription.beam_size"]


def main() -> int:
    runs = [2.0, 1.0, 3.0]
    emit("tiny", {"work": figure(min(runs), "s", baseline=4.0, stat="best", runs=runs,
                                 ratio_runs=[r / 4.0 for r in runs], goal_ratio_max=0.6)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


@pytest.mark.parametrize("how", ["runner", "module"])
def test_a_standalone_run_updates_only_its_own_section(copy: Path, how: str) -> None:
    (copy / "bench" / "tiny.py").write_text(FAKE, encoding="utf-8")
    git(copy, "add", "bench/tiny.py")
    git(copy, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "tiny")
    head = git(copy, "rev-parse", "--short", "HEAD")
    before = json.loads((copy / "bench" / "results.json").read_text(encoding="utf-8"))

    if how == "runner":
        result = run(copy, "--only", "tiny")
    else:
        result = subprocess.run([sys.executable, str(copy / "bench" / "tiny.py")], cwd=copy,
                                capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr

    after = json.loads((copy / "bench" / "results.json").read_text(encoding="utf-8"))
    assert after["format"] == "meeting-governance-bench/2"
    assert "machine" not in after  # no file-wide block for a standalone run to overwrite
    for name, section in before["sections"].items():
        assert after["sections"][name] == section, f"{name} changed"
    tiny = after["sections"]["tiny"]
    prov = tiny["provenance"]
    assert prov["git_commit"] == head
    assert prov["git_dirty"] is False
    assert prov["settings"] == {"transcription.beam_size": 5}
    assert prov["mode"] == "full"
    assert prov["machine"]["cpus_usable"] >= 1
    assert tiny["figures"]["work"]["runs"] == [2.0, 1.0, 3.0]

    if how == "module":  # a module on its own leaves the documentation to bench/run --readme
        assert run(copy, "--readme").returncode == 0
    text = (copy / "bench" / "README.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| tiny | work |"))
    assert "fastest repeat; per-repeat ratios: median 0.5, range 0.25–0.75 over 3 repeats; " \
           "2 of 3 within the goal ≤ 0.6" in row
    assert f"- **tiny**: full run of {prov['date'][:10]}" in text
    assert f"commit {head}" in text

    # The section is stale once its default changes, and only it among the fresh ones.
    set_default(copy, "transcription", "beam_size", "1")
    assert run(copy, "--readme").returncode == 0
    text = (copy / "bench" / "README.md").read_text(encoding="utf-8")
    assert ("| tiny | work | (stale) | s | | | stale: measured with beam 5, default is 1 — "
            "rerun `bench/run --only tiny` |") in text


def test_a_module_run_with_an_overriding_variable_does_not_merge(copy: Path) -> None:
    (copy / "bench" / "tiny.py").write_text(FAKE, encoding="utf-8")
    before = (copy / "bench" / "results.json").read_bytes()
    env = {"PATH": "/usr/bin:/bin", "MG_TRANSCRIPTION__BEAM_SIZE": "1"}
    result = subprocess.run([sys.executable, str(copy / "bench" / "tiny.py")], cwd=copy,
                            capture_output=True, text=True, timeout=120, check=False, env=env)
    assert result.returncode == 0
    assert "MG_TRANSCRIPTION__BEAM_SIZE" in result.stderr and "not merged" in result.stderr
    assert (copy / "bench" / "results.json").read_bytes() == before


def test_results_of_another_format_are_refused_not_replaced(copy: Path) -> None:
    path = copy / "bench" / "results.json"
    path.write_text(json.dumps({"format": "meeting-governance-bench/1", "sections": {}}),
                    encoding="utf-8")
    result = run(copy, "--readme")
    assert result.returncode == 2
    assert "bench/_migrate_v1_to_v2.py" in result.stderr


def test_every_committed_section_carries_its_own_provenance() -> None:
    """The committed results (converted once from format 1) say, per section, which commit,
    settings and machine they come from; none relies on a file-wide machine block."""
    results = json.loads((REPO / "bench" / "results.json").read_text(encoding="utf-8"))
    assert results["format"] == "meeting-governance-bench/2"
    assert "machine" not in results and "mode" not in results
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from figures import TRACKED_SETTINGS
    finally:
        sys.path.remove(str(REPO / "bench"))
    for name, section in results["sections"].items():
        prov = section["provenance"]
        assert re.fullmatch(r"[0-9a-f]{7,40}", prov["git_commit"]), name
        assert prov["git_dirty"] in (True, False, None), name
        assert prov["date"][:4].isdigit() and prov["mode"] in ("quick", "full"), name
        assert prov["machine"]["cpu_model"] and prov["machine"]["cpus_usable"] >= 1, name
        assert set(prov["settings"]) <= set(TRACKED_SETTINGS), name
        for key, fig in section.get("figures", {}).items():
            if fig.get("stat") == "best":  # a best-of figure keeps its repeats
                assert fig["runs"] and fig["ratio_runs"], f"{name}.{key}"
