"""fastloss's losses on ``jax.Array``: differentiable, and usable under ``jax.jit`` and ``jax.vmap``.

The functions take fastloss's NumPy signatures (``axis=1``, ``reduction="mean"``,
``weight``, ``ignore_index``, ...), minus the NumPy-only keywords ``return_grad``,
``grad_output``, ``gradient_out`` and ``out``: JAX's transformations take their place.

How a call runs
---------------
Each loss is a `jax.custom_vjp` around a host callback that runs fastloss's NumPy
function:

- the plain call (no differentiation) runs the kernel without its gradient;
- the forward rule (under ``jax.grad``, ``jax.value_and_grad``, ``jax.vjp``) runs it
  with ``return_grad=True`` and keeps the fused gradient, the gradient of the summed
  (or mean) loss, as the residual;
- the backward rule multiplies that residual by the cotangent: a scalar for "mean" and
  "sum"; for "none" the cotangent of each position, which is exact because a position's
  loss depends on its own logits only (on the logits of its class row for the class-axis
  losses, where the cotangent is broadcast along the class axis).  No second callback
  runs, and under ``jax.jit(jax.value_and_grad(...))`` XLA folds the multiplication by
  the constant cotangent 1 away.

The callback is ``jax.experimental.buffer_callback`` when the computation runs on the
CPU, and `jax.pure_callback` elsewhere.  ``jax.pure_callback`` copies every argument
twice on its way to Python (into a NumPy array of its own, then into a JAX array) and
every result once on its way back; for large logits these copies, into freshly mapped
memory, took many times the kernel's time.  ``buffer_callback`` hands the callback XLA's
own buffers: the kernel reads the logits where XLA keeps them and writes the gradient
straight into XLA's output buffer (``gradient_out=``), with no copy either way.  On
other platforms the data has to come to the host anyway, and ``pure_callback`` brings it.
The gradient is taken with respect to the input (logits) only: targets, ``weight`` and
``pos_weight`` get zero cotangents, so do not differentiate through them.

``vmap_method="expand_dims"``
-----------------------------
Under ``jax.vmap`` (both callbacks take the same ``vmap_method``) the callback is
called once for the whole batch, with vmap's axes in front of every array (of size 1 for
an argument that is not mapped), rather than once per example as ``"sequential"`` would
(a ``lax.map`` of callbacks, each a round trip to Python).  ``"expand_dims"`` is chosen over ``"broadcast_all"`` because the callback
broadcasts the unmapped arguments itself as zero-copy NumPy views, where
``"broadcast_all"`` would have XLA materialise, say, one target per mapped logits array.
The callback then treats vmap's axes as extra leading batch axes:

- ``reduction="none"``, softmax and log_softmax: ONE kernel call over the whole batch
  (the class axis shifted past vmap's axes), unless a per-example class ``weight`` is
  mapped, which the kernels cannot take in one call;
- ``reduction="mean"`` / ``"sum"``: each example must be reduced on its own (a mapped
  "mean" is the mean of each example, with its own normaliser), so the callback loops
  over the examples, one kernel call each, writing each gradient straight into its slice
  of the batch's gradient.  For many small examples, ``reduction="none"`` and a mean
  taken in JAX is faster.

Dtypes and errors
-----------------
float32, and float64 when ``jax_enable_x64`` is on, are computed in their own precision.
float16 and bfloat16 are computed in float32 and the loss (and the gradient) come back in
the input's dtype, as fastloss does for NumPy's float16; integer and bool inputs are
promoted to JAX's default floating dtype.  Complex inputs raise TypeError.

Shapes, dtypes and options are checked when the function is traced, with the NumPy
API's exceptions (ValueError, IndexError, TypeError).  Class targets are checked for
range at call time when they are concrete; inside ``jax.jit`` an out-of-range target is
found by the kernel, and JAX reports the IndexError's message in a ``JaxRuntimeError``
(Python exceptions cannot cross a compiled computation).
"""
import dataclasses
import functools
from typing import Callable

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.experimental.buffer_callback import buffer_callback
except ImportError as error:  # the optional extra
    raise ImportError('fastloss.jax needs JAX: pip install "fastloss[jax]"') from error

import fastloss as fl
from fastloss import _validate

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
           "softmax", "log_softmax"]

# How the host callback lays out each array argument when vmap's axes are present.
_FULL = "full"            # broadcast over vmap's axes, its own shape after them (input, target)
_FACTOR = "factor"        # an elementwise loss's weight: broadcast against the input
_PER_CLASS = "per_class"  # a class-axis loss's (C,) weight: one vector per kernel call


@dataclasses.dataclass(frozen=True)
class _HostCall:
    """A fastloss NumPy function and how to call it, fixed at trace time.

    ``roles`` and ``core_ndims`` describe the array arguments (input first, then target
    and the named ``keywords``): their ndim before vmap adds axes.  ``class_axis`` is the
    input's non-negative class axis (None for the elementwise losses), ``options`` the
    scalar keywords, ``reduction`` None for softmax/log_softmax.
    """

    function: Callable
    roles: tuple
    core_ndims: tuple
    keywords: tuple = ()
    options: tuple = ()
    class_axis: int | None = None
    reduction: str | None = None
    output_keyword: str = "gradient_out"

    def positional_count(self):
        return len(self.roles) - len(self.keywords)

    def run(self, arrays, axis_shift=0, **extra):
        """One kernel call on ``arrays``, with the class axis ``axis_shift`` further right."""
        count = self.positional_count()
        keywords = dict(zip(self.keywords, arrays[count:]), **dict(self.options), **extra)
        if self.class_axis is not None:
            keywords["axis"] = self.class_axis + axis_shift
        return self.function(*arrays[:count], **keywords)


def _host(call, with_grad, loss_shape, arrays, into=None):
    """fastloss on the host, over vmap's leading axes if there are any.

    ``into`` is where the kernel writes its result of the input's size (the gradient, or
    softmax's output: XLA's own buffer), None for memory of its own.
    """
    arrays = [np.asarray(a) for a in arrays]
    vmapped = arrays[0].ndim - call.core_ndims[0]
    keywords = {"return_grad": True} if with_grad else {}
    if into is not None:
        keywords[call.output_keyword] = into
    if vmapped == 0:
        return call.run(arrays, **keywords)
    batch = np.broadcast_shapes(*(a.shape[:vmapped] for a in arrays))
    one_call = call.reduction in (None, "none") and all(
        a.shape[:vmapped] == (1,) * vmapped for a, role in zip(arrays, call.roles) if role == _PER_CLASS)
    if one_call:
        return call.run([_batch_view(a, role, ndim, batch, call.core_ndims[0])
                         for a, role, ndim in zip(arrays, call.roles, call.core_ndims)],
                        axis_shift=vmapped, **keywords)
    return _each_example(call, with_grad, arrays, batch, loss_shape, into)


def _batch_view(array, role, core_ndim, batch, input_ndim):
    """``array`` laid out for one kernel call over the ``batch`` axes (a view: no copy)."""
    vmapped = len(batch)
    core = array.shape[vmapped:]
    if role == _PER_CLASS:
        return array.reshape(core)
    if role == _FACTOR:  # line its axes up with the input's, after vmap's
        core = (1,) * (input_ndim - core_ndim) + core
        array = array.reshape(array.shape[:vmapped] + core)
    return np.broadcast_to(array, batch + core)


def _each_example(call, with_grad, arrays, batch, loss_shape, into):
    """A reduced loss under vmap: one kernel call per example, each reduced on its own."""
    dtype = arrays[0].dtype
    losses = np.empty(batch + loss_shape, dtype)
    grads = None
    if with_grad:
        grads = into if into is not None else np.empty(batch + arrays[0].shape[len(batch):], dtype)
    for index in np.ndindex(*batch):
        example = [a[tuple(i if n > 1 else 0 for i, n in zip(index, a.shape))] for a in arrays]
        if with_grad:
            losses[index], _ = call.run(example, return_grad=True, gradient_out=grads[index])
        else:
            losses[index] = call.run(example)
    return (losses, grads) if with_grad else losses


def _copying_host(call, with_grad, loss_shape, *arrays):
    """``jax.pure_callback``'s callback: results in new memory, which JAX copies into its own."""
    return _host(call, with_grad, loss_shape, arrays)


def _in_place_host(call, with_grad, loss_shape, context, out, *buffers):
    """``buffer_callback``'s callback: reads XLA's input buffers and writes its output buffers."""
    if call.reduction is None:  # softmax and its kin: the output is the input-sized result
        _host(call, False, loss_shape, buffers, into=np.asarray(out))
        return
    if with_grad:
        loss_out, grad_out = out
        loss, _ = _host(call, True, loss_shape, buffers, into=np.asarray(grad_out))
    else:
        loss_out, loss = out, _host(call, False, loss_shape, buffers)
    np.asarray(loss_out)[...] = loss


def _in_place():
    """Whether the computation runs on the CPU, where the kernels can use XLA's buffers."""
    return jax.default_backend() == "cpu"


def _callback(call, with_grad, loss_shape, *arrays):
    x = arrays[0]
    loss_type = jax.ShapeDtypeStruct(loss_shape, x.dtype)
    result = (loss_type, jax.ShapeDtypeStruct(x.shape, x.dtype)) if with_grad else loss_type
    if _in_place():
        return buffer_callback(functools.partial(_in_place_host, call, with_grad, loss_shape), result,
                               vmap_method="expand_dims")(*arrays)
    return jax.pure_callback(functools.partial(_copying_host, call, with_grad, loss_shape), result, *arrays,
                             vmap_method="expand_dims")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused_loss(call, loss_shape, x, *others):
    return _callback(call, False, loss_shape, x, *others)


def _fused_loss_forward(call, loss_shape, x, *others):
    return _callback(call, True, loss_shape, x, *others)


def _fused_loss_backward(call, loss_shape, grad, cotangent):
    if call.reduction == "none" and call.class_axis is not None:
        cotangent = jnp.expand_dims(cotangent, call.class_axis)
    return (grad * cotangent, *([None] * (len(call.roles) - 1)))


_fused_loss.defvjp(_fused_loss_forward, _fused_loss_backward)


def _compute_input(input, name="input"):
    """``input`` as a jax array of the dtype the kernels compute in, and the dtype to return.

    float32/float64 stay; float16 and bfloat16 compute in float32; integers and bool
    become JAX's default floating dtype; anything else (complex) raises TypeError.
    """
    x = jnp.asarray(input)
    dtype = x.dtype
    if dtype in (jnp.float32, jnp.float64):
        return x, dtype
    if dtype in (jnp.float16, jnp.bfloat16):
        return x.astype(jnp.float32), dtype
    if jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
        default = jnp.result_type(float)
        return x.astype(default), default
    raise TypeError(f"{name} has dtype {dtype}, which cannot be a loss input; "
                    "expected a floating, integer or bool array")


def _floating_like(target, x):
    """A floating target in the input's compute dtype (the kernels read no bfloat16)."""
    target = jnp.asarray(target)
    if jnp.issubdtype(target.dtype, jnp.floating) and target.dtype != x.dtype:
        return target.astype(x.dtype)
    return target


def _is_concrete(array):
    return not isinstance(array, jax.core.Tracer)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=1, z_loss=0.0):
    """Cross-entropy of logits, as `fastloss.cross_entropy`, on JAX arrays.

    Differentiable with respect to ``input`` (``jax.grad``, ``jax.value_and_grad``), and
    usable under ``jax.jit`` and ``jax.vmap``; the loss and its gradient come from one
    fused pass of fastloss's kernel.

    Parameters
    ----------
    input : jax.Array
        Logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
    target : jax.Array
        Class indices (integer dtype, the input's shape without the class axis) or
        class probabilities (floating, the input's shape).
    weight : jax.Array, optional
        A rescaling weight per class, shape ``(C,)``.
    ignore_index : int, optional
        A class target that contributes neither loss nor gradient (default -100).
    reduction : {"mean", "sum", "none"}, optional
        torch's meaning: "mean" divides by the summed weights of the non-ignored
        targets; "none" returns the loss of every position.
    label_smoothing : float, optional
        In [0, 1], as torch's.
    axis : int, optional
        The class axis (default 1); ``axis=-1`` takes channels-last data, as optax's
        losses expect it, without a transpose.
    z_loss : float, optional
        At least 0: adds ``z_loss * logsumexp(input)**2`` per position (PaLM's z-loss).

    Returns
    -------
    jax.Array
        A scalar for "mean"/"sum", the target's positions for "none", in the input's
        dtype.  The gradient flows to ``input`` only.

    Raises
    ------
    ValueError
        Mismatched shapes, an unknown ``reduction``, ``label_smoothing`` outside [0, 1],
        a ``weight`` whose length is not C, non-integer class targets.
    IndexError
        A concrete class target outside [0, C) that is not ``ignore_index`` (inside
        ``jax.jit``, a ``JaxRuntimeError`` carrying the same message).
    TypeError
        A complex input.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> import fastloss.jax as flj
    >>> logits = jnp.array([[-1.0, -3.0, 4.0], [-3.0, 3.0, -1.0]])
    >>> labels = jnp.array([0, 1])
    >>> loss, grad = jax.value_and_grad(flj.cross_entropy)(logits, labels)
    >>> round(float(loss), 4)
    2.5141
    >>> np.asarray(grad, float).round(3).tolist()
    [[-0.497, 0.0, 0.496], [0.001, -0.01, 0.009]]
    """
    x, result_dtype = _compute_input(input)
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension, the class axis")
    class_axis = _validate.class_axis(axis, x.ndim)
    ignore = _validate.ignore_index(ignore_index)
    options = (("reduction", _validate.reduction(reduction)), ("ignore_index", ignore),
               ("label_smoothing", _validate.label_smoothing(label_smoothing)),
               ("z_loss", _validate.z_loss(z_loss)))
    classes = x.shape[class_axis]
    positions = x.shape[:class_axis] + x.shape[class_axis + 1:]
    target = _floating_like(target, x)
    if target.shape == x.shape:
        _validate.probability_target(np.empty(0, target.dtype), x.dtype, ignore)
    elif target.shape == positions:
        # The dtype check now; the range check too where the values are known.
        _validate.class_target(np.asarray(target) if _is_concrete(target) else np.empty(0, target.dtype),
                               classes, ignore)
    else:
        raise ValueError(f"target of shape {target.shape} does not match input {x.shape}: expected "
                         f"the input's shape without the class axis {positions} (class indices) "
                         f"or the input's shape {x.shape} (probabilities)")
    arrays, roles, keywords = [x, target], [_FULL, _FULL], ()
    if weight is not None:
        weight = jnp.asarray(weight)
        _validate.class_weight(np.empty(weight.shape, weight.dtype), classes, x.dtype)
        arrays.append(weight.astype(x.dtype))
        roles.append(_PER_CLASS)
        keywords = ("weight",)
    call = _HostCall(fl.cross_entropy, tuple(roles), tuple(a.ndim for a in arrays), keywords, options,
                     class_axis, reduction)
    loss = _fused_loss(call, positions if reduction == "none" else (), *arrays)
    return loss.astype(result_dtype)


def _elementwise(function, input, target, factors, options, reduction):
    """An elementwise loss: ``factors`` maps a keyword (weight, pos_weight) to an array or None."""
    x, result_dtype = _compute_input(input)
    reduction = _validate.reduction(reduction)
    target = _floating_like(target, x)
    _validate.float_dtypes(np.empty(0, target.dtype), "target")
    _validate.same_shape(target, x.shape, "target")
    arrays, keywords = [x, target], []
    for name, factor in factors.items():
        if factor is None:
            continue
        factor = jnp.asarray(factor)
        _validate.float_dtypes(np.empty(0, factor.dtype), name)
        try:
            fits = np.broadcast_shapes(factor.shape, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name} of shape {factor.shape} does not broadcast to the input shape {x.shape}")
        arrays.append(factor.astype(x.dtype))
        keywords.append(name)
    roles = (_FULL, _FULL) + (_FACTOR,) * len(keywords)
    call = _HostCall(function, roles, tuple(a.ndim for a in arrays), tuple(keywords),
                     (("reduction", reduction), *options), None, reduction)
    loss = _fused_loss(call, x.shape if reduction == "none" else (), *arrays)
    return loss.astype(result_dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None, reduction="mean"):
    """Binary cross-entropy of logits, as `fastloss.binary_cross_entropy_with_logits`, on JAX arrays.

    optax's ``sigmoid_binary_cross_entropy`` is this loss with ``reduction="none"``.

    Parameters
    ----------
    input : jax.Array
        Logits, any shape (0-d included).
    target : jax.Array
        Targets of the input's shape.
    weight : jax.Array, optional
        A rescaling weight that broadcasts against the input.
    pos_weight : jax.Array, optional
        A weight of the positive term that broadcasts against the input.
    reduction : {"mean", "sum", "none"}, optional
        "mean" divides by the number of elements.

    Returns
    -------
    jax.Array
        A scalar for "mean"/"sum", the input's shape for "none", in the input's dtype.
        The gradient flows to ``input`` only.

    Raises
    ------
    ValueError
        A target whose shape is not the input's, a ``weight`` or ``pos_weight`` that does
        not broadcast to it, an unknown ``reduction``.
    TypeError
        A complex input, target or weight.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import fastloss.jax as flj
    >>> logits = jnp.array([[0.2], [-1.0], [2.0]])
    >>> round(float(flj.binary_cross_entropy_with_logits(logits, jnp.array([[1.0], [0.0], [1.0]]))), 5)
    0.34611
    """
    return _elementwise(fl.binary_cross_entropy_with_logits, input, target,
                        {"weight": weight, "pos_weight": pos_weight}, (), reduction)


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none"):
    """Sigmoid focal loss of logits, as `fastloss.sigmoid_focal_loss` (torchvision's), on JAX arrays.

    optax's ``sigmoid_focal_loss(logits, labels, alpha, gamma)`` is this loss with
    ``reduction="none"`` and the same ``alpha``, except for optax's default
    ``alpha=None`` (no alpha factor), which is ``alpha=-1`` here.

    Parameters
    ----------
    input : jax.Array
        Logits, any shape (0-d included).
    target : jax.Array
        Targets of the input's shape, usually 0 or 1.
    alpha : float, optional
        The weight of the positive term (0.25); negative turns the alpha factor off.
    gamma : float, optional
        The focusing exponent, at least 0 (2).
    reduction : {"none", "mean", "sum"}, optional
        "none" (the default, as torchvision's) returns the loss of every element.

    Returns
    -------
    jax.Array
        The input's shape for "none", a scalar otherwise, in the input's dtype.  The
        gradient flows to ``input`` only.

    Raises
    ------
    ValueError
        A target whose shape is not the input's, an unknown ``reduction``, a
        non-finite ``alpha`` or ``gamma``, ``gamma < 0``.
    TypeError
        A complex input or target, an ``alpha`` or ``gamma`` that is not a real number.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np
    >>> import fastloss.jax as flj
    >>> logits = jnp.array([[2.0, -1.0], [-3.0, 0.5]])
    >>> targets = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    >>> np.asarray(flj.sigmoid_focal_loss(logits, targets), float).round(4).tolist()
    [[0.0005, 0.017], [0.6916, 0.2831]]
    """
    alpha, gamma = _validate.focal_parameters(alpha, gamma)
    return _elementwise(fl.sigmoid_focal_loss, input, target, {},
                        (("alpha", alpha), ("gamma", gamma)), reduction)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _normalised(forward, backward, axis, x):
    return _callback(_HostCall(forward, (_FULL,), (x.ndim,), class_axis=axis, output_keyword="out"),
                     False, x.shape, x)


def _normalised_forward(forward, backward, axis, x):
    y = _normalised(forward, backward, axis, x)
    return y, y


def _normalised_backward(forward, backward, axis, y, cotangent):
    call = _HostCall(backward, (_FULL, _FULL), (y.ndim, y.ndim), class_axis=axis, output_keyword="out")
    return (_callback(call, False, y.shape, cotangent, y),)


_normalised.defvjp(_normalised_forward, _normalised_backward)


def _normalise(forward, backward, x, axis):
    x, result_dtype = _compute_input(x, "x")
    # A 0-d x is one class along an axis of its own (vmap then puts its axis in front).
    row = x.reshape(x.shape or (1,))
    y = _normalised(forward, backward, _validate.axis(axis, row.ndim), row)
    return y.reshape(x.shape).astype(result_dtype)


_NORMALISER_DOC = """{summary} of ``x`` along ``axis``, as `fastloss.{name}`, on JAX arrays.

    Differentiable (its backward pass is `fastloss.{name}_backward`), and usable under
    ``jax.jit`` and ``jax.vmap``.

    Parameters
    ----------
    x : jax.Array
        Logits, any shape (0-d included).
    axis : int, optional
        The axis to normalise over (default: the last, as ``jax.nn.{name}``).

    Returns
    -------
    jax.Array
        {result} of ``x``'s shape and dtype.

    Raises
    ------
    numpy.exceptions.AxisError
        If ``axis`` is out of range (an IndexError and ValueError).
    TypeError
        A complex ``x``.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np
    >>> import fastloss.jax as flj
    >>> np.asarray(flj.{name}(jnp.array([1.0, 2.0, 3.0])), float).round(4).tolist()
    {example}
    """


def softmax(x, axis=-1):
    return _normalise(fl.softmax, fl.softmax_backward, x, axis)


def log_softmax(x, axis=-1):
    return _normalise(fl.log_softmax, fl.log_softmax_backward, x, axis)


softmax.__doc__ = _NORMALISER_DOC.format(summary="Softmax", name="softmax", result="Probabilities",
                                         example="[0.09, 0.2447, 0.6652]")
log_softmax.__doc__ = _NORMALISER_DOC.format(summary="Log-softmax", name="log_softmax", result="Log-probabilities",
                                             example="[-2.4076, -1.4076, -0.4076]")
