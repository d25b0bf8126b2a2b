"""Scenario files written by users: declarative YAML (``vectors/scenario.schema.json``) turned into vectors.

    adam-conformance generate --scenarios my_scenarios.yaml --out my_vectors/
    pytest --candidate=... --vectors=my_vectors/
    adam-conformance check --scenarios my_scenarios.yaml --vectors my_vectors/   # stale after a kit upgrade?

A scenario says what ``vectors/scenarios.py`` says in Python: the hyperparameters (numbers, per-step
callables, a schedule, decay), the variables (literal values or a seeded generator), the steps (dense,
sparse, None, or a count of generated steps). The vectors are built by the same generator, so they are
deterministic and verified on load like the bundled ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from conformance.dtypes import exact_in, is_exact_in
from conformance.errors import first_line
from conformance.load.limits import YAML_LOADER, unbounded
from vectors import generate
from vectors.scenarios import DYADIC, NOTES, Generated, Scenario, Sparse, draw

#: A scenario with a generated tensor larger than this is stored as the bundled large vectors are: inputs as
#: seeded generators with their sha256, expected states as digests; it is flagged ``large`` (run with --scale).
LARGE = 1 << 16

SCHEMA = json.loads(resources.files("vectors").joinpath("scenario.schema.json").read_text(encoding="utf-8"))


class ScenarioError(Exception):
    """One line: ``file: scenario 'id': field 'f': what is wrong``."""

    def __init__(self, path: Path | str, message: str, sid: str | None = None, field: str | None = None) -> None:
        where = [str(path)] + ([f"scenario '{sid}'"] if sid else []) + ([f"field '{field}'"] if field else [])
        super().__init__(": ".join(where + [message]))


def _exact(path: Path, sid: str, field: str, values: Any, formats: list[str], round_: bool) -> Any:
    """``values`` exact in every format, rounded there only on request."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        # The loader takes NaN and Inf only in the gradients of a vector flagged 'non-finite', which a scenario file
        # cannot flag: refused here, in one line, rather than written into a vector file that then does not load.
        raise ScenarioError(path, "a value is NaN or infinite: scenario values must be finite", sid, field)
    with np.errstate(over="ignore"):  # a value past a format's range is inexact there, said below, not warned of
        inexact = [f for f in formats if not is_exact_in(arr, f)]
    if not inexact:
        return values
    if not round_:
        raise ScenarioError(path, f"{values if arr.size == 1 else 'a value'} is not exact in {inexact[0]}, which this "
                                  "scenario needs; give an exact value or set 'round: true'", sid, field)
    rounded = exact_in(arr, formats)
    return float(rounded) if arr.ndim == 0 else rounded.tolist()


def _scenario(path: Path, family: str, raw: dict) -> Scenario:
    sid, dtypes, round_ = raw["id"], raw.get("dtypes", ["float32", "float64"]), raw.get("round", False)
    if not sid.startswith(f"{family}/"):
        raise ScenarioError(path, f"the id must start with the file's family, '{family}/'", sid, "id")
    hyper_formats = sorted(set(dtypes) | {"float32"})  # TF stores Python-float hyperparameters as float32
    hyper, rounded = dict(DYADIC), []
    n_steps = raw["steps"]["count"] if isinstance(raw["steps"], dict) else len(raw["steps"])
    for name, spec in raw.get("hyperparameters", {}).items():
        field = f"hyperparameters.{name}"
        numbers = next(iter(spec.values())) if isinstance(spec, dict) else [spec]
        if not all(math.isfinite(x) for x in numbers):
            raise ScenarioError(path, "a hyperparameter must be finite (vectors hold finite ones only: the pipe "
                                      "never sends another, spec/pipe-protocol.md P-1)", sid, field)
        if isinstance(spec, dict) and len(numbers) < n_steps:
            kind = next(iter(spec))
            raise ScenarioError(path, f"the {kind} has {len(numbers)} value(s) for {n_steps} steps: it needs one per "
                                      "step", sid, f"{field}.{kind}")
        if isinstance(spec, dict):
            kind, values = next(iter(spec.items()))
            hyper[name] = {kind: _exact(path, sid, field, values, hyper_formats, round_)}
        else:
            hyper[name] = _exact(path, sid, field, spec, hyper_formats, round_)
        if hyper[name] != spec:
            rounded.append(f"{name} {spec} -> {hyper[name]}")
    shapes, variables = {}, {}
    large = any(isinstance(spec, dict) and int(np.prod(spec["generate"].get("shape", []), dtype=np.int64)) > LARGE
                for spec in raw["variables"].values())
    for name, spec in raw["variables"].items():
        field = f"variables.{name}"
        if isinstance(spec, dict):
            g = spec["generate"]
            if "shape" not in g:
                raise ScenarioError(path, "a generated variable needs a shape", sid, field + ".generate.shape")
            shapes[name] = tuple(g["shape"])
            variables[name] = (Generated(g["seed"], g.get("scale", 1.0), tuple(dtypes)) if large
                               else draw(g["seed"], shapes[name], g.get("scale", 1.0), dtypes))
        else:
            variables[name] = _exact(path, sid, field, spec, dtypes, round_)
            shapes[name] = np.shape(variables[name])
    steps = _steps(path, sid, raw["steps"], shapes, dtypes, round_, large)
    description = raw["description"] + (f" (rounded on request: {'; '.join(rounded)})" if rounded else "")
    return Scenario(sid, description, list(raw["clauses"]), variables, steps, hyper, amsgrad=raw.get("amsgrad", False),
                    dtypes=list(dtypes), level=raw.get("level", "core"), construct=raw.get("construct", "explicit"),
                    shapes={n: tuple(shp) for n, shp in shapes.items()} if large else {}, digest=large,
                    flags=["large"] if large else [])


def _steps(path: Path, sid: str, spec: Any, shapes: dict, dtypes: list[str], round_: bool, large: bool) -> list[dict]:
    def made(seed: int, shape: tuple, scale: float) -> Any:
        return Generated(seed, scale, tuple(dtypes)) if large else draw(seed, shape, scale, dtypes)

    if isinstance(spec, dict):  # {count, gradients: {name: generator}}
        out = []
        for s in range(spec["count"]):
            step: dict[str, Any] = {}
            for name, g in spec["gradients"].items():
                if name not in shapes:
                    raise ScenarioError(path, f"gradient for undeclared variable {name!r}", sid, f"steps.gradients.{name}")
                shape, seed = shapes[name], g["seed"] * 1000 + s
                if "rows" in g:  # sparse: this many rows, drawn with repeats, as an embedding update is
                    if not shape:
                        raise ScenarioError(path, "sparse rows need a variable with at least one axis", sid,
                                            f"steps.gradients.{name}.rows")
                    rows = random.Random(seed).choices(range(shape[0]), k=g["rows"])
                    step[name] = Sparse(sorted(rows) if large else rows,
                                        made(seed, (g["rows"],) + tuple(shape[1:]), g.get("scale", 1.0)))
                else:
                    step[name] = made(seed, tuple(shape), g.get("scale", 1.0))
            out.append(step)
        return out
    out = []
    for s, raw_step in enumerate(spec):
        if all(g is None for g in raw_step.values()):
            raise ScenarioError(path, "no variable has a gradient at this step: apply_gradients raises for such a call "
                                      "(ADAM-ITER-3), so no vector can record it; give one variable a gradient or drop "
                                      "the step", sid, f"steps[{s}]")
        step = {}
        for name, g in raw_step.items():
            field = f"steps[{s}].{name}"
            if name not in shapes:
                raise ScenarioError(path, f"gradient for undeclared variable {name!r}", sid, field)
            shape = tuple(shapes[name])
            if g is None:
                step[name] = None
            elif isinstance(g, dict) and "indices" in g:
                _sparse_fits(path, sid, field, g, shape)
                step[name] = Sparse(list(g["indices"]), _exact(path, sid, field + ".values", g["values"], dtypes, round_))
            elif isinstance(g, dict):
                gen = g["generate"]
                step[name] = made(gen["seed"], shape, gen.get("scale", 1.0))
            else:
                if np.shape(g) != shape:
                    raise ScenarioError(path, f"a gradient of shape {list(np.shape(g))} for a variable of shape "
                                              f"{list(shape)}", sid, field)
                step[name] = _exact(path, sid, field, g, dtypes, round_)
        out.append(step)
    return out


def _sparse_fits(path: Path, sid: str, field: str, g: dict, shape: tuple) -> None:
    """A sparse gradient's rows exist in the variable and its values have one row of the variable's per index."""
    if not shape:
        raise ScenarioError(path, "a sparse gradient needs a variable with at least one axis", sid, field)
    bad = [i for i in g["indices"] if i >= shape[0]]
    if bad:
        raise ScenarioError(path, f"index {bad[0]} is out of range for a variable of {shape[0]} rows", sid, field + ".indices")
    want = (len(g["indices"]),) + shape[1:]
    if np.shape(g["values"]) != want:
        raise ScenarioError(path, f"values of shape {list(np.shape(g['values']))}, expected {list(want)} (one row of "
                                  "the variable per index)", sid, field + ".values")


def load(path: Path | str) -> tuple[str, str, list[Scenario]]:
    """A scenario file's family, description and scenarios; ScenarioError (one line) for anything wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, f"cannot read file: {exc}") from None
    refused = unbounded(text)
    if refused:
        raise ScenarioError(path, refused)
    try:
        document = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScenarioError(path, f"malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document))
    if error is not None:
        parts = list(error.absolute_path)
        sid = None
        if len(parts) >= 2 and parts[0] == "scenarios" and isinstance(parts[1], int):
            item = document["scenarios"][parts[1]]
            sid, parts = (item.get("id") if isinstance(item, dict) else None) or f"#{parts[1]}", parts[2:]
        field = ".".join(str(p) for p in parts) or None
        raise ScenarioError(path, error.message[:200], sid, field)
    family = document["family"]
    ids = [s["id"] for s in document["scenarios"]]
    if len(set(ids)) != len(ids):
        raise ScenarioError(path, "two scenarios share an id")
    return family, document.get("description", f"User scenarios from {path.name}."), [
        _scenario(path, family, raw) for raw in document["scenarios"]]


def build(path: Path | str, scn: Scenario) -> dict:
    """The vector of one scenario, through the oracle; ScenarioError (one line, naming the step where the oracle
    stopped) for anything the checks in ``load`` did not foresee, so that no oracle traceback reaches the author."""
    try:
        return generate.build(scn)
    except Exception as exc:  # noqa: BLE001 - whatever the oracle raises is the scenario's problem, said in one line
        what = f"the oracle cannot run it: {type(exc).__name__}: {first_line(exc)}"
        raise ScenarioError(path, what, scn.id, _failing_step(scn)) from None


def _failing_step(scn: Scenario) -> str | None:
    """``steps[s]`` for the first step whose prefix of the run the oracle cannot build (None: not a step's doing)."""
    for s in range(len(scn.steps) + 1):
        try:
            generate.build(dataclasses.replace(scn, steps=scn.steps[:s]))
        except Exception:  # noqa: BLE001 - found: the steps before s run, and s-1 is the one that does not
            return f"steps[{s - 1}]" if s else None
    return None


def document(path: Path | str) -> tuple[str, dict]:
    """The vector file a scenario file makes: its family name and its YAML document."""
    family, description, scns = load(path)
    return family, {"format": generate.FORMAT, "spec_version": generate.SPEC_VERSION, "family": family,
                    "description": description, "notes": NOTES, "vectors": [build(path, s) for s in scns]}


def write(paths: list[Path], out_dir: Path) -> list[Path]:
    """Generate the vector file of each scenario file into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        family, doc = document(p)
        target = out_dir / f"{family}.yaml"
        target.write_text(generate.render(doc), encoding="utf-8")
        written.append(target)
    return written


def check(paths: list[Path], vector_dir: Path) -> list[str]:
    """One line per committed vector file that is missing or differs from what the scenarios make now."""
    problems = []
    for p in paths:
        family, doc = document(p)
        target = vector_dir / f"{family}.yaml"
        if not target.exists():
            problems.append(f"{target}: missing (run `adam-conformance generate --scenarios {p} --out {vector_dir}`)")
            continue
        have, want = target.read_text(encoding="utf-8"), generate.render(doc)
        if have != want:
            old = yaml.load(have, Loader=YAML_LOADER) if not unbounded(have) else {}
            stale = [v["id"] for v in doc["vectors"]
                     if v not in (old.get("vectors") or [])] if isinstance(old, dict) else []
            what = f"vector(s) {', '.join(stale)}" if stale else "the file"
            problems.append(f"{target}: stale: {what} differ from what {p} makes with this kit (spec "
                            f"{generate.SPEC_VERSION}); regenerate with `adam-conformance generate --scenarios`")
    return problems
