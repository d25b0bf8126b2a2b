"""Users' scenario files: the README's example generates, loads, passes against the reference, and goes stale."""

from __future__ import annotations

import re

import pytest

from conformance import cli
from conformance.load.files import load_paths
from tests.helpers import ROOT

# The example lives where the section "Your own vectors" is: it moved from the README to docs/vectors.md.
README = next(text for text in ((ROOT / p).read_text(encoding="utf-8") for p in ("README.md", "docs/vectors.md"))
              if "## Your own vectors" in text)
EXAMPLE = re.search(r"## Your own vectors.*?```yaml\n(.*?)```", README, flags=re.S).group(1)


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    return path


def test_the_readme_example_generates_loads_and_passes(example, tmp_path, pytester, capsys, kit_cache):
    out = tmp_path / "team-vectors"
    assert cli.main(["generate", "--scenarios", str(example), "--out", str(out)]) == 0
    vectors, errors = load_paths(sorted(out.glob("*.yaml")))
    assert errors == [] and [v.id for v in vectors] == ["team/embedding-bf16"]
    assert "(rounded on request: learning_rate 0.0003 -> " in vectors[0].record["description"]
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest(*kit_cache, "--candidate=reference:Adam", f"--vectors={out}", "-k", "team")
    result.assert_outcomes(passed=2)
    assert cli.main(["check", "--scenarios", str(example), "--vectors", str(out)]) == 0
    generated = (out / "team.yaml").read_text(encoding="utf-8")
    assert cli.main(["generate", "--scenarios", str(example), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "team.yaml").read_text(encoding="utf-8") == generated  # byte for byte


def test_a_changed_scenario_makes_the_committed_vectors_stale(example, tmp_path, capsys):
    out = tmp_path / "v"
    cli.main(["generate", "--scenarios", str(example), "--out", str(out)])
    example.write_text(EXAMPLE.replace("count: 20", "count: 21"), encoding="utf-8")
    assert cli.main(["check", "--scenarios", str(example), "--vectors", str(out)]) == 1
    assert f"{out / 'team.yaml'}: stale: vector(s) team/embedding-bf16 differ" in capsys.readouterr().err


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("    round: true\n", ""), "scenario 'team/embedding-bf16': field 'hyperparameters.learning_rate': "
                                                    "0.0003 is not exact in bfloat16, which this scenario needs; give an "
                                                    "exact value or set 'round: true'"),
    (lambda t: t.replace("id: team/", "id: other/"), "scenario 'other/embedding-bf16': field 'id': the id must start "
                                                      "with the file's family, 'team/'"),
    (lambda t: t.replace("clauses: [ADAM-UPDATE-4, ADAM-SPARSE-1]", "clauses: 7"),
     "scenario 'team/embedding-bf16': field 'clauses': 7 is not of type 'array'"),
    (lambda t: t.replace("family: team", "family: &f team\nalias: *f"), "YAML anchors and aliases are not allowed (line 1)"),
])
def test_a_bad_scenario_file_is_one_line(example, tmp_path, capsys, edit, message):
    example.write_text(edit(EXAMPLE), encoding="utf-8")
    assert cli.main(["generate", "--scenarios", str(example), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"adam-conformance generate: {example}: {message}\n"


@pytest.mark.slow  # a 10^6-element scenario through the oracle
def test_a_large_generated_scenario_is_stored_as_digests(example, tmp_path, pytester, kit_cache):
    example.write_text(EXAMPLE.replace("shape: [64, 8]", "shape: [5000, 64]").replace("rows: 6", "rows: 500")
                       .replace("count: 20", "count: 3"), encoding="utf-8")
    out = tmp_path / "big"
    assert cli.main(["generate", "--scenarios", str(example), "--out", str(out)]) == 0
    assert (out / "team.yaml").stat().st_size < 50_000  # 320,000 elements described by generators and digests
    vectors, errors = load_paths([out / "team.yaml"])
    assert errors == [] and vectors[0].record["flags"] == ["large"] and vectors[0].size == 320_000
    pytester.syspathinsert(ROOT)
    for candidate, outcome in (("reference:Adam", {"passed": 2}), ("reference.variants:LazySparse", {"failed": 2})):
        result = pytester.runpytest(*kit_cache, f"--candidate={candidate}", f"--vectors={out}", "-k", "team",
                                    "--scale")
        result.assert_outcomes(**outcome)
