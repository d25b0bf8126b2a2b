"""Adapter for ``tf_keras.optimizers.legacy.Adam``: TF 2.0's optimizer_v2 code line, the page's full API.

Hyperparameter callables and a ``LearningRateSchedule`` go to the optimizer
as they are; nothing is translated.  TF rejects a callable epsilon, which is
reported as unsupported.

Execution modes (``--execution``): ``eager``; ``function``, every
``apply_gradients`` call inside one ``tf.function`` as ``model.fit`` runs it;
``xla``, the same with ``jit_compile=True``; ``multiworker`` and
``multiworker-function``, under MultiWorkerMirroredStrategy in worker
processes (``conformance/adapters/tf_multiworker.py``).  A ``tf.function`` may create
variables only when first traced, so in those modes every variable's slots are
created before the first step (as ``model.fit`` does on its first trace).
``mirrored`` and ``mirrored-function``: the same under ``tf.distribute.MirroredStrategy``
over ``--world-size`` logical CPU devices, each replica given its share of the
step's gradient (``replicas.shares``), ``strategy.run`` called eagerly or inside
``tf.function``; every replica's copy is read (``replicas()``), and the twin is
the same candidate on one device in ``eager`` or ``function``.
``fit`` and ``fit-mixed`` run every step through ``model.fit`` itself (``FIT`` in
``conformance.adapters.fit_loop`` says how the gradient comes out exact).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from conformance.adapters import replicas, tf_multiworker
from conformance.adapters.base import Adapter, Batches, weights_in_spec_order
from conformance.adapters.fit_loop import FIT_EXECUTIONS, fit_lacking, fit_profile, fit_translations
from conformance.adapters.numpy_port import constructor_kwargs
from conformance.adapters.tf_ops import (TF_DTYPES, describe_aliases, indexed_slices, mirrored_strategy, page_aliases,
                                       per_replica, replica_values, tf_device, tf_flushes, tf_gradient)
from conformance.errors import Unsupported
from conformance.features import HYPERPARAMETERS, Feature

#: What a Python callable or schedule of the harness becomes inside a traced step.
TRACED = ("a Python callable or schedule is evaluated once, when tf.function traces the step, so it cannot change "
          "between calls of the compiled step")
#: Why a callable or schedule of the harness cannot cross a model.save / load_model.
_REBUILT = ("load_model rebuilds the optimizer from the config model.save wrote, where a callable hyperparameter is "
            "the value it had when saved and a schedule a class to rebuild: the kit's callables live in its own process")
#: Why a callable or schedule of the harness cannot go to a distributed mode's workers.
REMOTE = ("the kit's callables and schedules live in its own process and cannot be called from the worker processes "
          "of a distributed mode")


def method(opt: Any, name: str) -> Any:
    """``opt.<name>``, or Unsupported ("not implemented by the candidate: it has no <name>") where the candidate has no
    such attribute: a class wrapping another optimizer (TF 1's ``tf.compat.v1.train.AdamOptimizer`` has no
    ``get_config``, ``iterations``, ``get_gradients``, ...) lacks part of the page's API, as a NumPy port may."""
    try:
        return getattr(opt, name)
    except AttributeError as exc:
        if getattr(exc, "name", name) != name:  # an AttributeError raised inside a property: the candidate's own
            raise
        raise Unsupported(f"not implemented by the candidate: it has no {name}") from None


def _numpy(x: Any) -> np.ndarray:
    """A tensor's value (``.numpy()``, which keeps bfloat16), or a wrapped optimizer's plain number or array."""
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


class _Schedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: Any) -> float:
        return self.inner(int(step.numpy()) if hasattr(step, "numpy") else int(step))

    def get_config(self) -> dict:
        return {}


class TfKerasLegacyAdapter(Adapter):
    name = "tf_keras"
    clips = True  # clipnorm, global_clipnorm, clipvalue in apply_gradients from TF 2.2 (ADAM-CLIP-APPLY-1)
    framework = "tensorflow"
    claims_v2_api = True
    executions = {"eager": "eager apply_gradients, as in the page's examples",
                  "function": "apply_gradients inside tf.function, as model.fit runs it",
                  "xla": "apply_gradients inside tf.function(jit_compile=True), compiled by XLA",
                  "mirrored": "apply_gradients in each replica of a MirroredStrategy over logical CPU devices, "
                              "strategy.run called eagerly",
                  "mirrored-function": "the same with strategy.run inside tf.function, as model.fit runs it",
                  **{mode: f"{tf_multiworker.TEXT}{', inside tf.function' if fn else ', eagerly'}; workers on 127.0.0.1 unless --rank-hosts"
                     for mode, fn in tf_multiworker.MODES.items()},
                  **FIT_EXECUTIONS}
    #: --world-size and --split apply to these: replicas in this process (mirrored), or worker processes.
    distributed_executions = (*replicas.TF_MODES, *tf_multiworker.MODES)
    rank_executions = tuple(tf_multiworker.MODES)
    twin_label = replicas.TWIN_LABEL
    twin_binding = False  # production users assume bit-identity; the spec's verdict is the error model's
    pool = None  # the worker processes of a multiworker mode (conformance.adapters.ranks), kept across items

    def twin(self) -> "TfKerasLegacyAdapter | None":
        """A distributed mode's twin: the same candidate on one device, eagerly or under tf.function as the mode
        runs it."""
        if self.execution in replicas.TF_MODES:
            one = replicas.TF_MODES[self.execution]
        elif self.execution in tf_multiworker.MODES:
            one = "function" if tf_multiworker.MODES[self.execution] else "eager"
        else:
            return None
        return TfKerasLegacyAdapter(self.candidate, raw=self.raw, device=self.device, execution=one)

    def close(self) -> None:
        """End the worker processes (the end of the session)."""
        if self.pool is not None:
            self.pool.stop()

    def interrupt(self) -> None:
        self.close()  # a hung item: its workers are killed, the next item starts a fresh pool

    @property
    def translations(self) -> list[str]:
        out = []
        if self.execution in replicas.TF_MODES:
            n, split = replicas.world(self)
            out.append(f"each step's gradient split among {n} replicas ({split}: their sum is the vector's gradient)")
        if self.execution in tf_multiworker.MODES:
            out.append(f"each step's gradient divided among {self.world_size} workers ({self.split} split), summed by "
                       "the strategy's all-reduce into the vector's gradient bit for bit")
        if self.execution in ("eager", "mirrored", "multiworker"):
            return out
        if self.execution in FIT_EXECUTIONS:
            return out + fit_translations(self.execution)
        return out + ["slots created for every variable before the first step (tf.function creates variables only when "
                      "first traced)"]

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}

    def device_used(self) -> str:
        if self.execution in replicas.TF_MODES:
            if self.device != "cpu":
                raise ValueError("the mirrored modes run on logical CPU devices: use --device=cpu")
            return ", ".join(mirrored_strategy(replicas.world(self)[0]).extended.worker_devices)
        with tf.device(tf_device(self.device)):
            return tf.Variable(0.0).device or "unknown"

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.CALLABLE_EPSILON: "TensorFlow optimizers reject a callable epsilon (convert_to_tensor of a function)"}
        if self.device == "gpu":
            out[Feature.BFLOAT16] = "TensorFlow has no GPU bfloat16 Adam kernel"
        if self.execution not in ("eager", "mirrored"):
            why = REMOTE if self.execution in tf_multiworker.MODES else TRACED
            out.update({Feature.callable(k): why for k in HYPERPARAMETERS if k != "epsilon"})
            out[Feature.SCHEDULE] = why
        if self.execution in FIT_EXECUTIONS:
            out.update(fit_lacking(self.execution))
        if self.execution in tf_multiworker.MODES:
            out[Feature.NON_CONTIGUOUS] = "TensorFlow's tensors are always contiguous"
        if self.execution == "xla":
            out[Feature.AMSGRAD] = ("XLA cannot compile ResourceApplyAdamWithAmsgrad (TensorFlow registers no XLA kernel "
                                    "for it: InvalidArgumentError when the step is compiled)")
        return out

    def flushes_subnormals(self, dtype: str) -> bool:
        return tf_flushes(dtype, tf_device(self.device))

    checkpoint_formats = {
        "checkpoint": "tf.train.Checkpoint(optimizer=..., variables=...).save, restore in the new process before its "
                      "first step (the slots by deferred restoration), its variables created in reverse order",
        "model-h5": "model.save to .h5 of a model holding the variables, compiled with the optimizer; "
                    "tf_keras.models.load_model in the new process",
        "model-savedmodel": "model.save(save_format='tf'), a SavedModel, of the same model; load_model in the new process",
        "model-keras": "model.save to .keras of the same model; load_model in the new process",
        "weights-tf": "model.save_weights in TensorFlow's checkpoint format; load_weights into the model built anew in "
                      "the new process, before its first step",
        "weights-h5": "model.save_weights to .h5; load_weights into the model built anew in the new process"}

    def profile(self) -> tuple[str, ...]:
        return fit_profile(self.execution)

    def checkpoint_lacking(self, fmt: str) -> dict[Feature, str]:
        """The ``model-`` formats rebuild the optimizer from the config in the file: the kit's callables and schedules
        are not in it."""
        return {**{Feature.callable(k): _REBUILT for k in HYPERPARAMETERS if k != "epsilon"}, Feature.SCHEDULE: _REBUILT
                } if fmt.startswith("model-") else {}

    def start(self, spec: Any) -> Any:
        if self.execution in tf_multiworker.MODES:
            if self.device != "cpu":
                raise Unsupported("the multiworker modes run their workers on CPU")
            return tf_multiworker.start(self, spec, "conformance.adapters.tf_keras:MultiWorkerTfSession")
        if self.execution in replicas.TF_MODES:
            return MirroredTfSession(self.candidate, spec, mirrored_strategy(replicas.world(self)[0]),
                                     self.execution, replicas.world(self))
        if self.execution in FIT_EXECUTIONS:
            return TfFitSession(self.candidate, spec, tf_device(self.device), self.execution)
        return TfSession(self.candidate, spec, tf_device(self.device), self.execution)

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        if fmt == "checkpoint":
            tf.train.Checkpoint(optimizer=session.opt, variables=dict(session.vars)).save(os.path.join(directory, "ckpt"))
        elif fmt.startswith("model-"):
            _holder(session).save(os.path.join(directory, _SAVED[fmt]), **({"save_format": "tf"}
                                                                          if fmt == "model-savedmodel" else {}))
        else:
            _holder(session).save_weights(os.path.join(directory, _SAVED[fmt]))

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> "TfSession":
        if fmt == "checkpoint":
            # Matched by the object graph (the dict's keys), not by creation order: the new process creates them
            # reversed.
            session = self.start(dataclasses.replace(spec, variables=dict(reversed(spec.variables.items()))))
            tf.train.Checkpoint(optimizer=session.opt, variables=dict(session.vars)).restore(
                tf.train.latest_checkpoint(directory))
            return session
        session = self.start(spec)
        if fmt.startswith("model-"):
            # The model and its optimizer are the loaded ones: the session takes them over.
            model = tf_keras.models.load_model(os.path.join(directory, _SAVED[fmt]),
                                               custom_objects={"_Held": _Held})
            session.adopt(model.optimizer, dict(zip(spec.variables, model.layers[-1].held)))
        else:
            _holder(session).load_weights(os.path.join(directory, _SAVED[fmt]))
        return session

    def v2_api(self) -> Any:
        if self.distributed:  # the API checks build their own optimizers in the kit's process, on one device
            raise Unsupported(f"the optimizer_v2 API checks run on one device; --execution={self.execution} is judged "
                              "on the vectors")
        return TfApi(self.candidate, tf_device(self.device))

    def page_aliases(self) -> dict[str, Any]:
        return page_aliases()

    def environment(self) -> dict[str, Any]:
        """Flush-to-zero, and what the page's names resolve to here (ADAM-API-ALIAS-1; shown in the header)."""
        return {**super().environment(), "page_aliases": describe_aliases(page_aliases())}


#: Where each model format's file goes, in the checkpoint's directory.
_SAVED = {"model-h5": "model.h5", "model-savedmodel": "savedmodel", "model-keras": "model.keras",
          "weights-tf": "weights", "weights-h5": "weights.h5"}


class _Held(tf_keras.layers.Layer):
    """A layer whose weights are given variables (when saving) or zeros of their shapes and dtypes (``from_config``,
    when loading, before the file's values are set); its call passes the input through."""

    def __init__(self, specs: list, variables: list | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = [list(x) for x in specs]
        self.held = variables if variables is not None else [
            self.add_weight(name=name, shape=shape, dtype=dtype, initializer="zeros") for name, shape, dtype in specs]

    def call(self, x: Any) -> Any:
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "specs": self.specs}


def _holder(session: "TfSession") -> tf_keras.Model:
    """A functional model whose one layer holds ``session``'s variables, compiled with its optimizer, as a user's model
    is before saving (``model.save`` in h5 takes only functional or sequential models)."""
    specs = [[n, list(v.shape), v.dtype.name] for n, v in session.vars.items()]
    inputs = tf_keras.Input((1,))
    model = tf_keras.Model(inputs, _Held(specs, list(session.vars.values()))(inputs))
    model.compile(optimizer=session.opt, loss="mse")
    return model


class TfSession:
    def __init__(self, cls: Any, spec: Any, device: str, execution: str = "eager") -> None:
        self.device, self.amsgrad, self.execution = device, spec.amsgrad, execution
        with tf.device(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            if spec.round_trip:
                self.opt = type(self.opt).from_config(self.opt.get_config())
            self.vars = {n: tf.Variable(v, dtype=TF_DTYPES[spec.dtype_of(n)], name=n) for n, v in spec.variables.items()}
        self.batches = Batches()
        self.step = self.opt.apply_gradients
        if execution != "eager":
            with tf.device(device):
                self.opt._create_all_weights(list(self.vars.values()))
            self.batches.note(dict.fromkeys(self.vars, True))  # get_weights lists the slots in creation order
            self.step = tf.function(self._apply, jit_compile=execution == "xla")

    def adopt(self, opt: Any, variables: dict) -> None:
        """Take over a loaded model's optimizer and variables (``model.save`` formats)."""
        self.opt, self.vars = opt, variables
        if self.execution == "eager":
            self.step = opt.apply_gradients
        else:  # as in __init__: the slots made before the first traced step (those loaded are kept)
            with tf.device(self.device):
                self.opt._create_all_weights(list(self.vars.values()))
            self.step = tf.function(self._apply, jit_compile=self.execution == "xla")

    def _apply(self, pairs: list) -> None:
        self.opt.apply_gradients(pairs)  # in a graph it returns an Operation, which a tf.function may not return

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with tf.device(self.device):
            self.step([(tf_gradient(g, self.vars[n].dtype), self.vars[n]) for n, g in grads.items()])
        self.batches.note(grads)

    def read(self) -> dict:
        # A wrapped optimizer without iterations or get_slot leaves them unobserved (the variable decides), and one
        # whose get_slot returns None for a slot it lacks (TF 1's) has not that slot, as a NumPy port's KeyError says.
        iterations = getattr(self.opt, "iterations", None)
        out: dict[str, Any] = {"iterations": None if iterations is None else int(_numpy(iterations))}
        get_slot = getattr(self.opt, "get_slot", None)
        for n, var in self.vars.items():
            out[n] = {"variable": var.numpy()}
            for slot in ("m", "v", "vhat"):
                try:
                    value = None if get_slot is None else get_slot(var, slot)
                except (KeyError, ValueError):
                    value = None
                out[n][slot] = None if value is None else _numpy(value)
        return out

    def load(self, state: dict) -> None:
        """Through the optimizer's own ``set_weights`` (ADAM-API-WEIGHTS-2), then the variables."""
        # Slots made before the first step (function and xla) exist while the oracle's are still absent: zero.
        zeros = lambda n, x: np.zeros_like(state[n]["variable"]) if x is None else x  # noqa: E731
        state = {**state, **{n: {k: zeros(n, x) for k, x in state[n].items()} for n in self.vars}}
        numpy_dtype = {n: var.dtype.as_numpy_dtype for n, var in self.vars.items()}
        method(self.opt, "set_weights")(weights_in_spec_order(state, self.batches, self.amsgrad,
                                                              lambda n, x: x.astype(numpy_dtype[n])))
        for n, var in self.vars.items():
            var.assign(state[n]["variable"].astype(numpy_dtype[n]))


class MirroredTfSession(TfSession):
    """A ``TfSession`` whose optimizer and variables are made under a ``MirroredStrategy``: each call runs
    ``apply_gradients`` in every replica with that replica's share of the gradients (TensorFlow sums them)."""

    def __init__(self, cls: Any, spec: Any, strategy: Any, execution: str, world: tuple[int, str]) -> None:
        self.strategy, self.world = strategy, world
        with strategy.scope():
            super().__init__(cls, spec, "", replicas.TF_MODES[execution])  # "": the strategy places them
        self.step = tf.function(self._run, reduce_retracing=True) if execution == "mirrored-function" else self._run

    def _run(self, names: tuple, values: dict) -> None:
        def replica(given: dict) -> None:
            self.opt.apply_gradients([(given.get(n), self.vars[n]) for n in names])
        self.strategy.run(replica, args=(values,))

    def apply(self, grads: dict[str, Any], step: int) -> None:
        dtypes = {n: self.vars[n].dtype for n in grads}
        n, split = self.world
        shares = {k: replicas.shares(g, n, split, dtypes[k].as_numpy_dtype)
                  for k, g in grads.items() if g is not None}
        self.step(tuple(grads), per_replica(self.strategy, shares, dtypes))
        self.batches.note(grads)

    def replicas(self) -> list[dict]:
        """Every replica's copy of the variables and slots, in ``read``'s layout (iterations is one variable)."""
        whole = self.read()
        out = [{"iterations": whole["iterations"]} for _ in range(self.world[0])]
        for n, var in self.vars.items():
            copies = {"variable": replica_values(var)}
            for slot in ("m", "v", "vhat"):
                copies[slot] = None if whole[n][slot] is None else replica_values(self.opt.get_slot(var, slot))
            for r, state in enumerate(out):
                state[n] = {f: None if c is None else c[r] for f, c in copies.items()}
        return out


class MultiWorkerTfSession(TfSession):
    """A worker's session under ``MultiWorkerMirroredStrategy`` (``tf_multiworker``; built in the worker process):
    optimizer and variables made under the strategy, ``apply_gradients`` run in replica context with this worker's
    share of the step's gradients (the strategy sums them), eagerly or inside one ``tf.function``."""

    def __init__(self, strategy: Any, cls: Any, spec: Any, function: bool) -> None:
        self.strategy = strategy
        with strategy.scope():
            super().__init__(cls, spec, "", "function" if function else "eager")  # "": the strategy places them
        self.step = tf.function(self._replica) if function else self._replica

    def _replica(self, grads: dict, without: tuple) -> None:
        self.opt.apply_gradients([(grads.get(n), self.vars[n]) for n in self.vars if n in grads or n in without])

    def apply(self, grads: dict[str, Any], step: int) -> None:
        tensors = {n: tf_gradient(g, self.vars[n].dtype) for n, g in grads.items() if g is not None}
        self.strategy.run(self.step, args=(tensors, tuple(n for n, g in grads.items() if g is None)))
        self.batches.note(grads)


class TfFitSession(TfSession):
    """Every step through ``model.fit``: one call per step, one batch of one sample, the vector's gradients as the
    sample (``conformance.adapters.fit_loop``); ``fit-mixed`` under the ``mixed_float16`` policy, so that
    ``compile`` wraps the candidate in its ``LossScaleOptimizer``.  ``self.opt`` stays the candidate (the wrapper
    delegates ``iterations`` and the slots to it)."""

    def __init__(self, cls: Any, spec: Any, device: str, execution: str) -> None:
        self.device, self.amsgrad = device, spec.amsgrad
        with tf.device(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            if spec.round_trip:
                self.opt = type(self.opt).from_config(self.opt.get_config())
            self.model = _LinearModel(spec, "mixed_float16" if execution == "fit-mixed" else None)
            self.model.compile(optimizer=self.opt)
        self.vars = self.model.by_name
        self.batches = Batches()

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with tf.device(self.device):
            sample = {n: tf.constant(np.asarray(g)[None], dtype=self.vars[n].dtype) for n, g in grads.items()}
            self.model.fit(sample, batch_size=1, epochs=1, shuffle=False, verbose=0)
        self.batches.note(grads)


class _LinearModel(tf_keras.Model):
    """A model whose weights are the vector's variables and whose loss is ``sum_n sum(w_n * G_n)``: the gradient
    of ``w_n`` is the sample ``G_n``, exactly (``fit_loop``).  Inputs and weights are never autocast."""

    def __init__(self, spec: Any, policy: str | None) -> None:
        super().__init__(name="fit_model", autocast=False, **({"dtype": policy} if policy else {}))
        self.by_name = {n: self.add_weight(name=n, shape=v.shape, dtype=TF_DTYPES[spec.dtype_of(n)],
                                           initializer=tf_keras.initializers.Constant(v), experimental_autocast=False)
                        for n, v in spec.variables.items()}

    def call(self, sample: dict) -> Any:
        # Each term in float64 so that variables of several dtypes add up; d(cast)/dx passes 1.0 back exactly.
        loss = tf.add_n([tf.cast(tf.reduce_sum(w * sample[n][0]), tf.float64) for n, w in self.by_name.items()])
        self.add_loss(loss)
        return loss


class TfApi:
    """What the optimizer_v2 API checks need, for TensorFlow."""

    def __init__(self, cls: Any, device: str) -> None:
        self.cls, self.device = cls, device

    def make(self, **kwargs: Any) -> Any:
        return self.cls(**kwargs)

    def variable(self, values: Any, dtype: str = "float32") -> Any:
        with tf.device(self.device):
            return tf.Variable(np.array(values), dtype=TF_DTYPES[dtype])

    def gradient(self, values: Any, dtype: str = "float32") -> Any:
        return tf.constant(np.array(values), dtype=TF_DTYPES[dtype])

    def sparse(self, values: Any, indices: Any, shape: Any, dtype: str = "float32") -> Any:
        return indexed_slices(np.array(values), np.array(indices), shape, TF_DTYPES[dtype])

    def numpy(self, x: Any) -> np.ndarray:
        x = x.numpy() if hasattr(x, "numpy") else x
        return np.asarray(x, dtype=np.int64 if np.asarray(x).dtype.kind in "iu" else np.float64)

    def linear_loss(self, terms: list[tuple[Any, Any]], reduce: bool = True) -> Any:
        """A zero-argument loss ``sum_i sum(c_i * x_i)``: its gradient with respect to ``x_i`` is ``c_i``, exactly.

        ``x_i`` is a variable, or a zero-argument callable returning one (so a variable can be created by the
        loss's first call, ADAM-API-MIN-1).  With ``reduce=False`` (one term) the loss is the tensor ``c * x``.
        """
        def loss() -> Any:
            parts = [tf.constant(np.array(c), dtype=x.dtype) * x for c, x in
                     ((c, x() if callable(x) else x) for c, x in terms)]
            return parts[0] if not reduce else tf.add_n([tf.reduce_sum(p) for p in parts])
        return loss

    def minimize(self, opt: Any, loss: Any, var_list: Any, grad_loss: Any = None) -> Any:
        """``opt.minimize(loss, var_list, grad_loss)``: TF differentiates ``loss`` (ADAM-API-MIN-1/2)."""
        with tf.device(self.device):
            return method(opt, "minimize")(loss, var_list, grad_loss=None if grad_loss is None else self.gradient(grad_loss))

    def in_graph(self, kwargs: dict, values: list, coefficients: list, call: str) -> dict[str, Any]:
        """``get_gradients`` or ``get_updates`` (ADAM-API-GRADS-1, ADAM-API-UPDATES-1), which work on graph tensors only.

        In a TF1 graph: float32 variables from ``values``, the loss ``sum_i sum(c_i * x_i)`` over the entries
        whose ``c_i`` is not None (the others have no gradient), ``opt = cls(**kwargs)``, then
        ``opt.<call>(loss, variables)`` run in a session.  Returns ``{"gradients": [...]}`` or, for
        ``get_updates``, ``{"iterations": n, "m": [...], "v": [...]}`` as NumPy arrays.
        """
        with tf.Graph().as_default():
            xs = [tf.Variable(np.array(v), dtype=tf.float32) for v in values]
            loss = tf.add_n([tf.reduce_sum(tf.constant(np.array(c), tf.float32) * x)
                             for c, x in zip(coefficients, xs) if c is not None])
            opt = self.cls(**kwargs)
            out = method(opt, call)(loss, xs)
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                if call == "get_gradients":
                    return {"gradients": [np.asarray(g, np.float64) for g in session.run(out)]}
                session.run(out)
                return {"iterations": int(session.run(opt.iterations)),
                        **{s: [np.asarray(session.run(opt.get_slot(x, s)), np.float64) for x in xs] for s in ("m", "v")}}

    def dtype(self, name: str) -> Any:
        """The framework's dtype object for ``name``."""
        return TF_DTYPES[name]

    def tensor(self, value: float) -> Any:
        """A constant float32 Tensor (a hyperparameter given as "A Tensor", ADAM-API-LR-1)."""
        return tf.constant(value, dtype=tf.float32)

    def scalar_variable(self, value: float) -> Any:
        """A float32 ``tf.Variable`` holding ``value`` (ADAM-API-LR-1)."""
        return tf.Variable(value, dtype=tf.float32)

    def assign(self, variable: Any, value: Any) -> None:
        """Assign a scalar or a counter: ``variable.assign(value)``."""
        variable.assign(value)

    def set_iterations(self, opt: Any, n: int) -> None:
        """ADAM-API-ITER-2: ``iterations`` is a variable; the user assigns it."""
        method(opt, "iterations").assign(n)

    def custom_schedule(self) -> tuple[type, Any]:
        """A user-defined schedule class (``HalvingSchedule``: ``lr * 2**-step``) and an instance (ADAM-API-CONFIG-3)."""
        class HalvingSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
            def __init__(self, initial: float) -> None:
                self.initial = initial

            def __call__(self, step: Any) -> Any:
                return self.initial * tf.pow(0.5, tf.cast(step, tf.float32))

            def get_config(self) -> dict:
                return {"initial": self.initial}

        return HalvingSchedule, HalvingSchedule(2.0**-7)

    def raises(self) -> tuple[type[BaseException], ...]:
        return (ValueError, tf.errors.InvalidArgumentError)

