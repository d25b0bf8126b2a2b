"""The README opens with the two commands, and CI runs exactly the second one."""

from __future__ import annotations

import re

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
TEST_COMMAND = ('pip install -e ".[test,tensorflow,torch,jax]" && pip install --no-deps tf-keras==2.21.0 '
                "&& pytest -n 2 && pytest -n 2 -m slow")


def test_readme_opens_with_the_main_job_and_the_test_command():
    main_job, tests = BLOCKS[0], BLOCKS[1]
    first_section = README.index("\n## ")
    assert README.index(main_job) < README.index(tests) < first_section  # both before the first section
    assert README.count("```") >= 4 and README.index("```bash") == README.index("```")  # the first code block
    assert "--candidate=tf_keras.optimizers.legacy:Adam" in main_job and "--conformance-html=" in main_job
    assert "pip install --no-deps tf-keras==2.21.0" in main_job
    assert tests == TEST_COMMAND
    # The fast tier, then the slow one, on two workers: the machine CI runs on has two cores.
    assert tests.endswith("pytest -n 2 && pytest -n 2 -m slow")


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (command,) = re.findall(r"^TEST_COMMAND='(.*)'$", ci, flags=re.M)
    assert command == BLOCKS[1]
    assert "adam-conformance check" not in ci  # the slow tier regenerates the set (test_vectors): not twice


def test_paths_named_in_the_readme_and_docs_exist():
    """Every repository path the README and docs/*.md name in backquotes exists (a moved module or page is caught here)."""
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        named = set(re.findall(r"`((?:spec|docs|conformance|reference|vectors|ports|tests|benchmarks)/[\w./-]*)`", text))
        missing += [f"{page.name}: {p}" for p in sorted(named) if "*" not in p and not (ROOT / p).exists()]
    assert missing == []
    assert (ROOT / "CHANGELOG.md").is_file() and "CHANGELOG.md" in README
