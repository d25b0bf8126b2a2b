"""Adapter for Keras 3's ``keras.optimizers.Adam`` (also ``tensorflow.keras.optimizers.Adam`` from TF 2.16 on).

Runs on whichever backend Keras loaded (``KERAS_BACKEND``).  Keras 3 accepts
only a callable learning rate and ignores ``decay``: those vectors are
unsupported.  Translations (off with ``raw``): every variable is registered
with ``build()`` before the first step, since Keras 3 refuses variables it
first sees later; on the JAX and torch backends a sparse gradient is
densified.  Slots are read from Keras's ``_momentums`` / ``_velocities`` /
``_velocity_hats`` lists.

Execution modes (``--execution``): ``eager``; on the TensorFlow backend
``function`` and ``xla`` (``apply_gradients`` inside ``tf.function``, the
second with ``jit_compile=True``, as ``model.fit`` runs it); on the JAX
backend ``jit`` (``stateless_apply`` under ``jax.jit``, as the JAX trainer
runs every step); on the torch backend ``compile`` (``torch.compile``).  In those modes the variables are always registered with
``build()`` first, since a compiled step cannot create them.  On the TensorFlow backend ``mirrored`` and
``mirrored-function``: the optimizer and variables made under ``tf.distribute.MirroredStrategy`` over
``--world-size`` logical CPU devices, ``apply_gradients`` run in every replica with its share of the step's gradient,
``strategy.run`` called eagerly or inside ``tf.function``; the twin is the same candidate on one device in ``eager``
or ``function``.  On the TensorFlow backend also ``multiworker`` and ``multiworker-function``: the same under
``MultiWorkerMirroredStrategy`` in ``--world-size`` worker processes on 127.0.0.1, by the tf_keras adapter's
mechanism (``conformance/adapters/tf_multiworker.py``), each gradient passed through ``tf.identity`` in replica
context (without it ``multiworker-function`` fails on dense gradients in the worker).  On every backend ``fit`` and ``fit-mixed`` run
every step through ``model.fit`` itself (``conformance.adapters.fit_loop``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("KERAS_BACKEND") == "jax":
    # Without 64-bit mode JAX silently stores float64 variables as float32.
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402

from conformance.adapters import replicas, tf_multiworker  # noqa: E402
from conformance.adapters.base import Adapter, densify, subnormal  # noqa: E402
from conformance.adapters.fit_loop import FIT_EXECUTIONS, fit_lacking, fit_profile, fit_translations  # noqa: E402
from conformance.adapters.numpy_port import constructor_kwargs  # noqa: E402
from conformance.dtypes import NUMPY_DTYPES  # noqa: E402
from conformance.errors import Unsupported  # noqa: E402
from conformance.features import Feature  # noqa: E402

BACKEND = keras.backend.backend()


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, step: Any) -> float:
        return self.inner(int(keras.ops.convert_to_numpy(step)))


def _device_scope(device: str) -> Any:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.device("/GPU:0" if device == "gpu" else "/CPU:0")
    return keras.device("gpu:0" if device == "gpu" else "cpu:0")


#: What a Python callable or schedule of the harness becomes inside a compiled step.
TRACED = ("a Python callable or schedule is evaluated once, when the compiled step is traced, so it cannot change "
          "between calls")
#: Why a callable or schedule of the harness cannot go to a multiworker mode's workers.
REMOTE = ("the kit's callables and schedules live in its own process and cannot be called from the worker processes "
          "of a distributed mode")
COMPILED = {"tensorflow": {"function": "apply_gradients inside tf.function, as model.fit runs it",
                           "xla": "apply_gradients inside tf.function(jit_compile=True), compiled by XLA",
                           "mirrored": "apply_gradients in each replica of a MirroredStrategy over logical CPU devices, "
                                       "strategy.run called eagerly",
                           "mirrored-function": "the same with strategy.run inside tf.function, as model.fit runs it",
                           **{mode: f"{tf_multiworker.TEXT}{', inside tf.function' if fn else ', eagerly'}; workers on "
                                    "127.0.0.1" for mode, fn in tf_multiworker.MODES.items()}},
            "jax": {"jit": "stateless_apply under jax.jit, as Keras's JAX trainer runs it"},
            "torch": {"compile": "apply_gradients under torch.compile, as Keras's torch trainer runs it with "
                                 "jit_compile=True"}}


class Keras3Adapter(Adapter):
    name = "keras3"
    clips = True  # clipnorm, global_clipnorm, clipvalue in apply_gradients (ADAM-CLIP-APPLY-1)
    framework = "keras"
    executions = {"eager": "apply_gradients called directly", **COMPILED.get(BACKEND, {}), **FIT_EXECUTIONS}
    #: --world-size and --split apply to these.
    distributed_executions = (*replicas.TF_MODES, *tf_multiworker.MODES) if BACKEND == "tensorflow" else ()
    rank_executions = tuple(tf_multiworker.MODES) if BACKEND == "tensorflow" else ()
    twin_label, twin_binding = replicas.TWIN_LABEL, False
    pool = None  # the worker processes of a multiworker mode (conformance.adapters.ranks), kept across items

    def twin(self) -> "Keras3Adapter | None":
        """A distributed mode's twin: the same candidate on one device, in the matching one-device mode."""
        if self.execution in tf_multiworker.MODES:
            one = "function" if tf_multiworker.MODES[self.execution] else "eager"
        elif self.execution in replicas.TF_MODES:
            one = replicas.TF_MODES[self.execution]
        else:
            return None
        return type(self)(self.candidate, raw=self.raw, device=self.device, execution=one)

    def close(self) -> None:
        """End the worker processes (the end of the session)."""
        if self.pool is not None:
            self.pool.stop()

    def interrupt(self) -> None:
        self.close()  # a hung item: its workers are killed, the next item starts a fresh pool

    @property
    def translations(self) -> list[str]:
        if self.execution in FIT_EXECUTIONS:
            return fit_translations(self.execution, BACKEND)
        out = ["variables registered with build() before the first step"]
        if self.execution in replicas.TF_MODES:
            n, split = replicas.world(self)
            out.append(f"each step's gradient split among {n} replicas ({split}: their sum is the vector's gradient)")
        if self.execution in tf_multiworker.MODES:
            out.append(f"each step's gradient divided among {self.world_size} workers ({self.split} split), summed by "
                       "the strategy's all-reduce into the vector's gradient bit for bit")
            out.append("each gradient passed through tf.identity in replica context (without it Keras 3's step under "
                       "MultiWorkerMirroredStrategy inside tf.function fails on dense gradients)")
        if self.raw:
            return out if self.execution != "eager" else []
        if BACKEND == "jax":
            out.append("JAX 64-bit mode enabled, so float64 variables stay float64")
        if BACKEND != "tensorflow":
            out.append("IndexedSlices densified (duplicates summed)")
        return out

    def versions(self) -> dict[str, str]:
        out = {"keras": keras.__version__, "backend": BACKEND}
        if BACKEND == "tensorflow":
            import tensorflow as tf

            out["tensorflow"] = tf.__version__
        return out

    def device_used(self) -> str:
        if self.execution in replicas.TF_MODES:
            from conformance.adapters.tf_ops import mirrored_strategy

            if self.device != "cpu":
                raise ValueError("the mirrored modes run on logical CPU devices: use --device=cpu")
            return ", ".join(mirrored_strategy(replicas.world(self)[0]).extended.worker_devices)
        with _device_scope(self.device):
            value = keras.Variable(np.zeros(1, dtype=np.float32)).value
        return str(getattr(value, "device", None) or getattr(value, "devices", lambda: "?")())

    def lacking(self) -> dict[Feature, str]:
        out = {Feature.callable(k): f"Keras 3 accepts only a callable learning rate, not a callable {k}"
               for k in ("beta_1", "beta_2", "epsilon")}
        out[Feature.DECAY] = "Keras 3 ignores the legacy decay keyword (with a warning)"
        if self.raw and BACKEND != "tensorflow":
            out[Feature.SPARSE] = f"Keras 3 on the {BACKEND} backend has no IndexedSlices gradient"
        if self.execution in tf_multiworker.MODES:
            out[Feature.CALLABLE_LEARNING_RATE] = out[Feature.SCHEDULE] = REMOTE
        elif self.execution not in ("eager", "mirrored"):
            out[Feature.CALLABLE_LEARNING_RATE] = out[Feature.SCHEDULE] = TRACED
        if self.execution in FIT_EXECUTIONS:
            out.update(fit_lacking(self.execution))
        return out

    def profile(self) -> tuple[str, ...]:
        return fit_profile(self.execution)

    def flushes_subnormals(self, dtype: str) -> bool:
        with _device_scope(self.device):
            x = keras.ops.multiply(keras.ops.convert_to_tensor(subnormal(dtype), dtype=dtype),
                                   keras.ops.convert_to_tensor(1.0, dtype=dtype))
        return float(keras.ops.convert_to_numpy(keras.ops.cast(x, "float64"))) == 0.0

    checkpoint_formats = {
        "weights.h5": "model.save_weights to .weights.h5 of a model holding the variables, compiled with the optimizer "
                      "(its state is saved with the weights); model.load_weights in the new process",
        "model.keras": "model.save to .keras of the same model; keras.models.load_model in the new process (its "
                       "optimizer is the one the file rebuilds from its config)",
        **({"checkpoint": "tf.train.Checkpoint(optimizer=..., variables=...).save, restore in the new process"}
           if BACKEND == "tensorflow" else {})}

    def checkpoint_lacking(self, fmt: str) -> dict[Feature, str]:
        """``model.keras`` rebuilds the optimizer from the config in the file: the kit's callables are not in it."""
        why = ("load_model rebuilds the optimizer from the config model.save wrote, where a callable learning rate or a "
               "schedule is a class to rebuild: the kit's callables live in its own process")
        return {Feature.CALLABLE_LEARNING_RATE: why, Feature.SCHEDULE: why} if fmt == "model.keras" else {}

    def start(self, spec: Any) -> Any:
        if self.execution in tf_multiworker.MODES:
            if self.device != "cpu":
                raise Unsupported("the multiworker modes run their workers on CPU")
            return tf_multiworker.start(self, spec, "conformance.adapters.keras3:MultiWorkerKeras3Session")
        if self.execution in replicas.TF_MODES:
            return MirroredKeras3Session(self.candidate, spec, self.raw, self.execution, replicas.world(self))
        if self.execution in FIT_EXECUTIONS:
            return Keras3FitSession(self.candidate, spec, self.device, self.execution)
        return Keras3Session(self.candidate, spec, self.device, self.raw, self.execution)

    def checkpoint_save(self, session: Any, fmt: str, directory: str) -> None:
        if fmt == "checkpoint":
            import tensorflow as tf

            tf.train.Checkpoint(optimizer=session.opt, variables=dict(session.vars)).save(os.path.join(directory, "ckpt"))
        elif fmt == "model.keras":
            _holder(session).save(os.path.join(directory, "model.keras"))
        else:
            _holder(session).save_weights(os.path.join(directory, "model.weights.h5"))

    def checkpoint_restore(self, spec: Any, fmt: str, directory: str) -> "Keras3Session":
        session = self.start(spec)
        if fmt == "checkpoint":
            import tensorflow as tf

            tf.train.Checkpoint(optimizer=session.opt, variables=dict(session.vars)).restore(
                tf.train.latest_checkpoint(directory))
        else:
            with warnings.catch_warnings(), _device_scope(self.device):
                warnings.simplefilter("ignore", UserWarning)  # what Keras skips shows as a state that did not survive
                if fmt == "model.keras":
                    model = keras.models.load_model(os.path.join(directory, "model.keras"),
                                                    custom_objects={"_Holder": _Holder})
                    session.adopt(model.optimizer, dict(zip(spec.variables, model.held)))
                else:
                    _holder(session).load_weights(os.path.join(directory, "model.weights.h5"))
        return session

    def page_aliases(self) -> dict[str, Any]:
        """ADAM-API-ALIAS-1, on the TensorFlow backend only (on another backend the kit does not import TensorFlow)."""
        if BACKEND != "tensorflow":
            return super().page_aliases()
        from conformance.adapters.tf_ops import page_aliases

        return page_aliases()

    def environment(self) -> dict[str, Any]:
        """Flush-to-zero, and on the TensorFlow backend what the page's names resolve to (shown in the header)."""
        out = super().environment()
        if BACKEND == "tensorflow":
            from conformance.adapters.tf_ops import describe_aliases, page_aliases

            out["page_aliases"] = describe_aliases(page_aliases())
        return out


class _Holder(keras.Model):
    """The least model that ``save_weights`` and ``save`` save: the session's variables as its weights, in their
    order; rebuilt by ``load_model`` from their names, shapes and dtypes (zeros until the file's values are set)."""

    def __init__(self, variables: list | None = None, specs: list | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs if variables is None else [[v.name, list(v.shape), v.dtype] for v in variables]
        self.held = variables if variables is not None else [
            self.add_weight(name=name, shape=tuple(shape), dtype=dtype, initializer="zeros")
            for name, shape, dtype in self.specs]
        self.built = True

    def call(self, x: Any) -> Any:
        return x

    def get_config(self) -> dict:
        return {"specs": self.specs}


def _holder(session: "Keras3Session") -> keras.Model:
    """A model over ``session``'s variables, compiled with its optimizer, as a user's model is before saving."""
    model = _Holder(list(session.vars.values()))
    model.compile(optimizer=session.opt)
    return model


class Keras3Session:
    def __init__(self, cls: Any, spec: Any, device: str, raw: bool, execution: str = "eager") -> None:
        self.spec, self.device, self.execution = spec, device, execution
        with _device_scope(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            if spec.round_trip:
                self.opt = type(self.opt).from_config(self.opt.get_config())
            self.vars = {n: keras.Variable(v.astype(NUMPY_DTYPES[spec.dtype_of(n)]), dtype=spec.dtype_of(n), name=n)
                         for n, v in spec.variables.items()}
            if not raw or execution != "eager":
                self.opt.build(list(self.vars.values()))
        self.step = self._apply
        if execution in ("function", "xla"):
            import tensorflow as tf

            self.step = tf.function(self._apply, jit_compile=execution == "xla")
        elif execution == "compile":
            import torch

            self.step = torch.compile(self._apply)
        elif execution == "jit":
            import jax

            self.stateless = jax.jit(self.opt.stateless_apply)
            self.step = self._apply_stateless

    def adopt(self, opt: Any, variables: dict) -> None:
        """Take over a loaded model's optimizer and variables (the ``model.keras`` format), before the first step."""
        self.opt, self.vars = opt, variables
        if self.execution == "jit":
            import jax

            self.stateless = jax.jit(self.opt.stateless_apply)

    def _apply(self, names: tuple, grads: list) -> None:
        # Variables are closed over, not passed: a tf.function would turn them into tensors.
        self.opt.apply_gradients([(g, self.vars[n]) for n, g in zip(names, grads)])

    def _apply_stateless(self, names: tuple, grads: list) -> None:
        """One jitted ``stateless_apply`` over every built variable, then the new values assigned back."""
        given = {id(self.vars[n]): g for n, g in zip(names, grads)}
        grads = [given.get(id(var)) for var in self.opt._trainable_variables]
        new_vars, new_opt = self.stateless([v.value for v in self.opt.variables], grads,
                                           [v.value for v in self.opt._trainable_variables])
        for var, value in zip(self.opt._trainable_variables, new_vars):
            var.assign(value)
        for var, value in zip(self.opt.variables, new_opt):
            var.assign(value)

    def _grad(self, g: Any, var: Any, dtype: str) -> Any:
        if g is None:
            return None
        if hasattr(g, "indices") and BACKEND == "tensorflow":
            from conformance.adapters.tf_ops import TF_DTYPES, tf_gradient

            return tf_gradient(g, TF_DTYPES[dtype])
        return keras.ops.convert_to_tensor(densify(g, tuple(var.shape), NUMPY_DTYPES[dtype]), dtype=dtype)

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with _device_scope(self.device):
            self.step(tuple(grads), [self._grad(g, self.vars[n], self.spec.dtype_of(n)) for n, g in grads.items()])

    def _slots(self, var: Any) -> dict[str, Any]:
        """Keras 3 keeps slots in lists indexed like its variables; empty before build()."""
        try:
            i = self.opt._get_variable_index(var) if getattr(self.opt, "built", False) else None
        except KeyError:
            i = None
        out = {}
        for slot, attr in (("m", "_momentums"), ("v", "_velocities"), ("vhat", "_velocity_hats")):
            lists = getattr(self.opt, attr, None)
            out[slot] = lists[i] if i is not None and lists and lists[i] is not None else None
        return out

    def read(self) -> dict:
        with warnings.catch_warnings():
            # Keras's convert_to_numpy calls np.array(variable), which NumPy 2 warns about (copy keyword).
            warnings.simplefilter("ignore", DeprecationWarning)
            out: dict[str, Any] = {"iterations": int(keras.ops.convert_to_numpy(self.opt.iterations))}
            for n, var in self.vars.items():
                out[n] = {"variable": keras.ops.convert_to_numpy(var)}
                for slot, x in self._slots(var).items():
                    out[n][slot] = None if x is None else keras.ops.convert_to_numpy(x)
        return out

    def load(self, state: dict) -> None:
        """Assign the iteration counter, the slots and the variables."""
        self.opt._iterations.assign(state["iterations"])
        for n, var in self.vars.items():
            dt = NUMPY_DTYPES[self.spec.dtype_of(n)]
            var.assign(state[n]["variable"].astype(dt))
            for slot, x in self._slots(var).items():
                if x is not None and state[n].get(slot) is not None:
                    x.assign(state[n][slot].astype(dt))


class MirroredKeras3Session(Keras3Session):
    """A ``Keras3Session`` whose optimizer and variables are made under a ``MirroredStrategy`` (TensorFlow backend):
    each call runs ``apply_gradients`` in every replica with that replica's share of the gradients."""

    def __init__(self, cls: Any, spec: Any, raw: bool, execution: str, world: tuple[int, str]) -> None:
        import tensorflow as tf

        from conformance.adapters.tf_ops import mirrored_strategy

        self.strategy, self.world = mirrored_strategy(world[0]), world
        with self.strategy.scope():
            super().__init__(cls, spec, "cpu", raw, replicas.TF_MODES[execution])
        self.step = tf.function(self._run, reduce_retracing=True) if execution == "mirrored-function" else self._run

    def _run(self, names: tuple, values: dict) -> None:
        def replica(given: dict) -> None:
            self.opt.apply_gradients([(given.get(n), self.vars[n]) for n in names])
        self.strategy.run(replica, args=(values,))

    def apply(self, grads: dict[str, Any], step: int) -> None:
        from conformance.adapters.tf_ops import TF_DTYPES, per_replica

        dtypes = {n: TF_DTYPES[self.spec.dtype_of(n)] for n in grads}
        n, split = self.world
        shares = {k: replicas.shares(g, n, split, dtypes[k].as_numpy_dtype)
                  for k, g in grads.items() if g is not None}
        self.step(tuple(grads), per_replica(self.strategy, shares, dtypes))

    def replicas(self) -> list[dict]:
        """Every replica's copy of the variables and slots, in ``read``'s layout."""
        from conformance.adapters.tf_ops import replica_values

        whole = self.read()
        out = [{"iterations": whole["iterations"]} for _ in range(self.world[0])]
        for n, var in self.vars.items():
            copies = {"variable": replica_values(var)}
            copies.update({slot: None if x is None else replica_values(x) for slot, x in self._slots(var).items()})
            for r, state in enumerate(out):
                state[n] = {f: None if c is None else c[r] for f, c in copies.items()}
        return out


class MultiWorkerKeras3Session(Keras3Session):
    """A worker's session under ``MultiWorkerMirroredStrategy`` (``tf_multiworker``; built in the worker process):
    optimizer and variables made under the strategy (every variable registered with ``build()``, as a tf.function
    needs), ``apply_gradients`` run in replica context with this worker's share of the step's gradients (the strategy
    sums them), eagerly or inside one ``tf.function``."""

    def __init__(self, strategy: Any, cls: Any, spec: Any, function: bool) -> None:
        import tensorflow as tf

        self.strategy = strategy
        with strategy.scope():
            super().__init__(cls, spec, "cpu", False, "function" if function else "eager")
        self.step = tf.function(self._replica) if function else self._replica

    def _replica(self, grads: dict, without: tuple) -> None:
        import tensorflow as tf

        # Without tf.identity, dense gradients inside tf.function fail in the worker (ValueError from the traced step,
        # measured with TensorFlow 2.21; issue 25 saw "destinations can not be empty"); eagerly they run either way.
        # The identity gives the same numbers, as a tensor made in replica context.
        self.opt.apply_gradients([(None if n in without else tf.identity(grads[n]), self.vars[n])
                                  for n in self.vars if n in grads or n in without])

    def apply(self, grads: dict[str, Any], step: int) -> None:
        tensors = {n: self._grad(g, self.vars[n], self.spec.dtype_of(n)) for n, g in grads.items() if g is not None}
        self.strategy.run(self.step, args=(tensors, tuple(n for n, g in grads.items() if g is None)))


def _fit_scope(device: str) -> Any:
    """The device scope of the fit modes: on torch, ``keras.device("cpu")``, since a variable created under
    ``keras.device("cpu:0")`` is a copy of its parameter, not a leaf, so ``fit`` finds no gradient for it
    (``docs/repro/keras3_torch_cpu0_fit.py``)."""
    if BACKEND == "torch" and device == "cpu":
        return keras.device("cpu")
    return _device_scope(device)


#: The integer type of each float's width: the sample carries G's bits, since Keras 3's data handling casts
#: floating inputs to floatx (measured on JAX: a float64 sample arrives as float32) but leaves integers alone.
_BITS = {"float16": np.int16, "bfloat16": np.int16, "float32": np.int32, "float64": np.int64}


def _from_bits(x: Any, dtype: str) -> Any:
    """The float tensor of ``dtype`` whose bits the integer tensor ``x`` holds (no arithmetic: exact)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.bitcast(x, tf.as_dtype(dtype))
    if BACKEND == "jax":
        import jax

        return jax.lax.bitcast_convert_type(x, keras.backend.standardize_dtype(dtype))
    from keras.src.backend.torch.core import to_torch_dtype

    return x.view(to_torch_dtype(dtype))


class _LinearModel(keras.Model):
    """A model whose weights are the vector's variables and whose loss is ``sum_n sum(w_n * G_n)``: the gradient of
    ``w_n`` is the sample ``G_n``, exactly (``fit_loop``).  Inputs and weights are never autocast."""

    def __init__(self, spec: Any, policy: str | None) -> None:
        super().__init__(name="fit_model", autocast=False, **({"dtype": policy} if policy else {}))
        self._convert_input_args = False  # the sample keeps each variable's dtype
        self.by_name = {n: self.add_weight(shape=v.shape, dtype=spec.dtype_of(n), name=n, autocast=False,
                                           initializer=keras.initializers.Constant(v.astype(NUMPY_DTYPES[spec.dtype_of(n)])))
                        for n, v in spec.variables.items()}

    def call(self, sample: dict) -> Any:
        # Each term in float64 so that variables of several dtypes add up; d(cast)/dx passes 1.0 back exactly.
        terms = [keras.ops.cast(keras.ops.sum(w * _from_bits(sample[n][0], w.dtype)), "float64")
                 for n, w in self.by_name.items()]
        loss = terms[0]
        for term in terms[1:]:
            loss = loss + term
        self.add_loss(loss)
        return loss


def _bits(g: Any, dtype: str) -> np.ndarray:
    """One sample holding the bits of gradient ``g`` in ``dtype`` (``_from_bits`` reads them back)."""
    return np.asarray(g, dtype=NUMPY_DTYPES[dtype])[None].view(_BITS[dtype])


class Keras3FitSession(Keras3Session):
    """Every step through ``model.fit``: one call per step, one batch of one sample, the vector's gradients as the
    sample (``conformance.adapters.fit_loop``); ``fit-mixed`` under the ``mixed_float16`` policy, so that
    ``compile`` wraps the candidate in its ``LossScaleOptimizer``.  ``self.opt`` stays the candidate (its slots and
    ``iterations`` are read there)."""

    def __init__(self, cls: Any, spec: Any, device: str, execution: str) -> None:
        self.spec, self.device, self.execution = spec, device, execution
        with _fit_scope(device):
            self.opt = cls(**constructor_kwargs(spec, _Schedule))
            if spec.round_trip:
                self.opt = type(self.opt).from_config(self.opt.get_config())
            self.model = _LinearModel(spec, "mixed_float16" if execution == "fit-mixed" else None)
            self.model.compile(optimizer=self.opt)
            self.opt.build(list(self.model.by_name.values()))  # so that a state can be loaded before the first step
        self.vars = self.model.by_name

    def apply(self, grads: dict[str, Any], step: int) -> None:
        with _fit_scope(self.device):
            sample = {n: keras.ops.convert_to_tensor(_bits(g, self.spec.dtype_of(n))) for n, g in grads.items()}
            self.model.fit(sample, batch_size=1, epochs=1, shuffle=False, verbose=0)
