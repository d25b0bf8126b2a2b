"""The README opens with the two commands, and CI runs exactly the second one."""

from __future__ import annotations

import re

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)


def test_readme_opens_with_the_main_job_and_the_test_command():
    main_job, tests = BLOCKS[0], BLOCKS[1]
    assert README.index(main_job) < README.index("## ")  # before the first section
    assert "--candidate=tf_keras.optimizers.legacy:Adam" in main_job and "--conformance-html=" in main_job
    assert "pip install --no-deps tf-keras==2.21.0" in main_job and "pip install --no-deps tf-keras==2.21.0" in tests
    assert tests.endswith("&& pytest -n 2")  # two workers: the machine CI runs on has two cores


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (command,) = re.findall(r"^TEST_COMMAND='(.*)'$", ci, flags=re.M)
    assert command == BLOCKS[1]
    assert "adam-conformance check" in ci
