"""The oracle as a candidate: a NumPy port that keeps the NumPy-port protocol.

``reference.Adam`` behaves as TF 2.0 executes ``tf.keras.optimizers.Adam``
(including the tf2-detail clauses), computing every step in float64 and
storing variables and slots back in the variable's dtype (ADAM-DTYPE-1).
It is what ``pytest --candidate=reference:Adam`` runs, and the model that
every other NumPy port is measured against.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import reference.adam as adam

Hyper = float | Callable[[], float]


class Adam:
    """NumPy port of ``tf.keras.optimizers.Adam`` (optimizer_v2 API subset)."""

    _ALLOWED_KWARGS = {"lr", "decay", "clipnorm", "clipvalue"}
    #: ADAM-TF2-CLIP-1: TF 2.0 clips only in minimize, so its apply_gradients ignores clipnorm and clipvalue.  True
    #: makes apply_gradients clip, and accept global_clipnorm, as TF 2.2+ and Keras 3 do (ADAM-CLIP-APPLY-1): how the
    #: kit's judge replays this port on a vector that asks for clipping, never what ``reference:Adam`` does.
    clips_in_apply_gradients = False

    def __init__(
        self,
        learning_rate: Hyper | adam.LearningRateSchedule = 0.001,
        beta_1: Hyper = 0.9,
        beta_2: Hyper = 0.999,
        epsilon: Hyper | None = 1e-7,
        amsgrad: bool = False,
        name: str = "Adam",
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - self._ALLOWED_KWARGS - ({"global_clipnorm"} if self.clips_in_apply_gradients else set())
        if unknown:
            raise TypeError(f"Unexpected keyword argument(s) passed to optimizer: {sorted(unknown)}")
        for key, value in kwargs.items():
            if not callable(value) and value < 0:
                raise ValueError(f"Expected {key} >= 0, received: {value}")
        # ADAM-TF2-LR-1: the `lr` alias wins over learning_rate.
        self._hyper: dict[str, Any] = {
            "learning_rate": kwargs.get("lr", learning_rate),
            "decay": float(kwargs.get("decay", 0.0)),
            "beta_1": beta_1,
            "beta_2": beta_2,
        }
        # ADAM-TF2-EPS-1: a falsy epsilon (0 or None) becomes 1e-7.
        self.epsilon = adam.effective_epsilon(epsilon)
        self.amsgrad = amsgrad
        self._name = name
        self._clip = {k: kwargs[k] for k in ("clipnorm", "global_clipnorm", "clipvalue") if k in kwargs}
        self._iterations = 0
        self._slots: dict[int, dict[str, np.ndarray]] = {}
        self._weights: list[np.ndarray] = []

    # --- ADAM-ITER / ADAM-API-ITER ---------------------------------------------------

    @property
    def iterations(self) -> int:
        """ADAM-ITER-1: the number of ``apply_gradients`` calls so far."""
        return self._iterations

    @iterations.setter
    def iterations(self, value: int) -> None:
        """ADAM-API-ITER-2: the user may set the counter; the next call uses ``t = value + 1``."""
        self._iterations = int(value)

    # --- hyperparameters ---------------------------------------------------------------

    #: ADAM-TF2-HYPER-1: Python-float hyperparameters are stored as float32 (a variant turns this off).
    float32_storage = True

    def _values_in_force(self) -> dict[str, float]:
        """The numbers in force at this call: callables called now (ADAM-HYPER-1), the schedule at the 0-based
        iterations (ADAM-HYPER-3)."""
        lr = self._hyper["learning_rate"]
        return {
            "learning_rate": lr(self._iterations) if isinstance(lr, adam.LearningRateSchedule) else adam.resolve(lr),
            "beta_1": adam.resolve(self._hyper["beta_1"]),
            "beta_2": adam.resolve(self._hyper["beta_2"]),
            "epsilon": adam.resolve(self.epsilon),
            "decay": adam.resolve(self._hyper["decay"]),
        }

    def hyperparameters_for(self, values: dict[str, float], dtype: np.dtype) -> adam.Hyperparameters:
        """What a variable of ``dtype`` sees: float32 storage, the cast to its dtype (ADAM-DTYPE-1), decay (ADAM-HYPER-4)."""
        return adam.call_hyperparameters(**values, iterations=self._iterations, float32_storage=self.float32_storage,
                                         dtype=dtype)

    # --- slots (ADAM-API-SLOTS) ------------------------------------------------------

    def get_slot_names(self) -> list[str]:
        """ADAM-API-SLOTS-1: ``['m', 'v']``, plus ``'vhat'`` with amsgrad."""
        return ["m", "v", "vhat"] if self.amsgrad else ["m", "v"]

    def add_slot(self, var: np.ndarray, slot_name: str) -> np.ndarray:
        """ADAM-API-SLOTS-2: create (once) a zero slot in the variable's dtype."""
        slots = self._slots.setdefault(id(var), {})
        if slot_name not in slots:
            slots[slot_name] = np.zeros_like(var)
            self._weights.append(slots[slot_name])
        return slots[slot_name]

    def get_slot(self, var: np.ndarray, slot_name: str) -> np.ndarray:
        """ADAM-API-SLOTS-2: the slot array of ``var``; KeyError if it does not exist."""
        return self._slots[id(var)][slot_name]

    def _create_slots(self, var_list: list[np.ndarray]) -> None:
        # ADAM-API-WEIGHTS-1: one loop per slot name, so weights are grouped by slot.
        for slot_name in self.get_slot_names():
            for var in var_list:
                self.add_slot(var, slot_name)

    # --- weights (ADAM-API-WEIGHTS) ----------------------------------------------------

    @property
    def weights(self) -> list[Any]:
        """ADAM-API-WEIGHTS-1: ``[iterations, m..., v..., vhat...]`` in creation order."""
        return [np.int64(self._iterations), *self._weights] if self._slots else []

    def variables(self) -> list[Any]:
        """ADAM-API-VARS-1: the same list as ``weights``."""
        return self.weights

    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: str = "zeros",
                   trainable: bool | None = None) -> np.ndarray:
        """ADAM-API-ADDWEIGHT-1: a new array of ``shape`` (float32 unless ``dtype``), zeros or ones; not in ``weights``."""
        fill = {"zeros": 0.0, "ones": 1.0}[initializer]
        return np.full(tuple(shape), fill, dtype=np.dtype(dtype or np.float32))

    def get_weights(self) -> list[np.ndarray]:
        """ADAM-API-WEIGHTS-1: copies of ``weights``."""
        return [np.array(w) for w in self.weights]

    def set_weights(self, weights: list[Any]) -> None:
        """ADAM-API-WEIGHTS-2: length and shapes must match; iterations is restored too."""
        params = self.weights
        if len(params) != len(weights):
            raise ValueError(
                f"set_weights: expected {len(params)} weights, got {len(weights)}"
            )
        for i, (p, w) in enumerate(zip(params, weights)):
            if np.shape(p) != np.shape(w):
                raise ValueError(f"set_weights: weight {i} has shape {np.shape(w)}, expected {np.shape(p)}")
        self._iterations = int(weights[0])
        for p, w in zip(self._weights, weights[1:]):
            p[...] = np.asarray(w).astype(p.dtype)

    # --- config (ADAM-API-CONFIG) ------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """ADAM-API-CONFIG-1: the TF 2.0 keys; a callable is serialized as its current value."""
        config: dict[str, Any] = {"name": self._name, **self._clip}
        for key in ("learning_rate", "decay", "beta_1", "beta_2"):
            value = self._hyper[key]
            config[key] = value if isinstance(value, adam.LearningRateSchedule) else adam.resolve(value)
        config["epsilon"] = self.epsilon
        config["amsgrad"] = self.amsgrad
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> "Adam":
        """ADAM-API-CONFIG-2: ``cls(**config)``, with ``lr`` renamed to ``learning_rate``."""
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        return cls(**config)

    # --- the update: one overridable hook per step, so a variant changes exactly one of them ---------

    bias_corrected_lr = staticmethod(adam.bias_corrected_lr)
    update_m = staticmethod(adam.update_m)
    update_v = staticmethod(adam.update_v)
    update_vhat = staticmethod(adam.update_vhat)
    update_variable = staticmethod(adam.update_variable)
    dense_gradient = staticmethod(adam.dense_gradient)
    local_step = staticmethod(adam.local_step)

    @staticmethod
    def step_of(var: np.ndarray, t: int) -> int:
        """ADAM-MULTI-2: the step ``t`` a variable's update uses: the optimizer's, the same for every variable."""
        return t

    @staticmethod
    def epsilon_hat(hp: adam.Hyperparameters, t: int) -> float:
        """ADAM-UPDATE-4: the epsilon added to sqrt(v) in the epsilon-hat form: the hyperparameter as given."""
        return hp.epsilon

    @staticmethod
    def working_dtype(dtype: np.dtype) -> np.dtype:
        """The precision the step is computed in: float64, whatever the variable's dtype."""
        return np.dtype(np.float64)

    def step_size(self, hp: adam.Hyperparameters, t: int, work: np.dtype) -> Any:
        """ADAM-UPDATE-1: alpha, in the working precision."""
        return self.bias_corrected_lr(hp.learning_rate, hp.beta_1, hp.beta_2, t)

    def moments(self, grad: Any, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                hp: adam.Hyperparameters) -> tuple[np.ndarray, np.ndarray]:
        """ADAM-UPDATE-2/3 from the dense gradient ``g`` (``grad`` is the gradient as passed, maybe IndexedSlices)."""
        return self.update_m(m, g, hp.beta_1), self.update_v(v, g, hp.beta_2)

    def amsgrad_max(self, vhat: np.ndarray, v: np.ndarray, hp: adam.Hyperparameters,
                    t: int) -> tuple[np.ndarray, np.ndarray]:
        """ADAM-AMSGRAD-1/2: the vhat to store, and the value whose root the update divides by."""
        vhat = self.update_vhat(vhat, v)
        return vhat, vhat

    def update_all(self, present: list[tuple[Any, np.ndarray]], values: dict[str, float], t: int) -> None:
        """ADAM-MULTI-1: every (gradient, variable) pair of one call, with the same t and hyperparameter values."""
        for g, var in present:
            self._update(var, g, self._slots[id(var)], self.hyperparameters_for(values, var.dtype), t)

    def _update(self, var: np.ndarray, grad: Any, slots: dict[str, np.ndarray], hp: adam.Hyperparameters, t: int) -> None:
        """One variable's update, in the working precision, written back in the variable's dtype (ADAM-DTYPE-1)."""
        t = self.step_of(var, t)
        work = self.working_dtype(var.dtype)
        g = self.dense_gradient(grad, var.shape).astype(work)
        alpha = self.step_size(hp, t, work)
        m, v = self.moments(grad, g, slots["m"].astype(work), slots["v"].astype(work), hp)
        denominator_v = v
        if self.amsgrad:
            vhat, denominator_v = self.amsgrad_max(slots["vhat"].astype(work), v, hp, t)
            slots["vhat"][...] = vhat.astype(var.dtype)
        new_var = self.update_variable(var.astype(work), alpha, m, denominator_v, self.epsilon_hat(hp, t))
        var[...] = new_var.astype(var.dtype)
        slots["m"][...] = m.astype(var.dtype)
        slots["v"][...] = v.astype(var.dtype)

    def clip_in_apply(self, present: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, np.ndarray]]:
        """ADAM-CLIP-APPLY-1: the call's (dense) gradients clipped once, as one device clips the aggregated gradient."""
        clipped = adam.clip_in_apply({i: adam.dense_gradient(g, v.shape) for i, (g, v) in enumerate(present)},
                                     **self._clip)
        return [(clipped[i], v) for i, (_, v) in enumerate(present)]

    def apply_gradients(self, grads_and_vars: Any, name: str | None = None) -> int:
        """Apply one step to every (gradient, variable) pair; variables change in place."""
        pairs = list(grads_and_vars)
        present = [(g, v) for g, v in pairs if g is not None]  # ADAM-ITER-2
        if not present:
            raise ValueError(f"No gradients provided for any variable: {len(pairs)} pair(s), all None")
        if self.clips_in_apply_gradients and self._clip:
            present = self.clip_in_apply(present)
        self._create_slots([v for _, v in present if id(v) not in self._slots])
        values = self._values_in_force()  # once per call: every variable sees the same values (ADAM-MULTI-1)
        self.update_all(present, values, self.local_step(self._iterations))
        self._iterations += 1  # ADAM-ITER-1
        return self._iterations
