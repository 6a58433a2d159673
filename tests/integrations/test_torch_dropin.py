"""fastloss.torch against torch.nn.functional (and the fastloss-only losses' references
written with torch ops): values and autograd gradients, layouts, custom-op checks, gradcheck,
torch.compile, the fallbacks to torch and the modules."""
import importlib
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import assert_docstring_examples_run
import fastloss as fl
import fastloss.torch as flt
from reference import focal_reference, z_loss_cross_entropy
from test_dice import monai_dice

TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
OPS = torch.ops.fastloss


@pytest.fixture(autouse=True)
def kernels_for_every_size(monkeypatch):
    """Every test but the small-input one runs the kernels whatever the size."""
    monkeypatch.setattr(flt, "SMALL_INPUT", dict.fromkeys(flt.SMALL_INPUT, 0))


def _generator(seed=20261204):
    return torch.Generator().manual_seed(seed)


def _class_target(shape, classes, gen, ignore_fraction=0.2):
    target = torch.randint(0, classes, shape, generator=gen)
    target[torch.rand(shape, generator=gen) < ignore_fraction] = -100
    return target


def _kl(student, teacher, temperature, dim, reduction):
    dim = dim if student.dim() > 1 else 0
    with warnings.catch_warnings():  # torch warns that "mean" is not "batchmean"
        warnings.simplefilter("ignore", UserWarning)
        return temperature ** 2 * F.kl_div(F.log_softmax(student / temperature, dim),
                                           F.log_softmax(teacher / temperature, dim),
                                           reduction=reduction, log_target=True)


def _kl_div(input, target, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(input, target, **kwargs)


def _numpy_reference(compute):
    """A reference written on NumPy arrays (``compute(x, grad_output) -> (loss, grad)``) as a
    function of a tensor, differentiable by autograd (its gradient is the reference's)."""
    class Reference(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.x = x.detach().numpy()
            with torch.enable_grad():  # the reference runs autograd itself
                loss, _ = compute(ctx.x, None)
            return torch.as_tensor(np.asarray(loss), dtype=x.dtype)

        @staticmethod
        def backward(ctx, upstream):
            with torch.enable_grad():
                _, grad = compute(ctx.x, upstream.numpy())
            return torch.as_tensor(grad, dtype=upstream.dtype)

    return Reference.apply


def case(name, shape, reduction, gen, dtype):
    """``(ours, reference, input)``: two functions of the input tensor, and the input."""
    x = torch.randn(shape, generator=gen, dtype=dtype) * 3
    classes = shape[1] if len(shape) > 1 else shape[0]
    positions = shape[:1] + shape[2:] if len(shape) > 1 else ()
    weight = torch.rand(classes, generator=gen, dtype=dtype) + 0.5
    like = torch.rand(shape, generator=gen, dtype=dtype)
    trailing = torch.rand(shape[1:], generator=gen, dtype=dtype) + 0.5  # broadcasts against the input
    if name == "cross_entropy":
        target = _class_target(positions, classes, gen)
        return (lambda x: flt.cross_entropy(x, target, weight, reduction=reduction, label_smoothing=0.1),
                lambda x: F.cross_entropy(x, target, weight, reduction=reduction, label_smoothing=0.1), x)
    if name == "cross_entropy_probabilities":
        target = torch.softmax(like, 1 if len(shape) > 1 else 0)
        return (lambda x: flt.cross_entropy(x, target, reduction=reduction),
                lambda x: F.cross_entropy(x, target, reduction=reduction), x)
    if name == "cross_entropy_z_loss":
        target = _class_target(positions, classes, gen)
        reference = _numpy_reference(lambda x, g: z_loss_cross_entropy(
            x, target.numpy(), 1e-3, weight=weight.numpy(), reduction=reduction, grad_output=g))
        return (lambda x: flt.cross_entropy(x, target, weight, reduction=reduction, z_loss=1e-3), reference, x)
    if name == "nll_loss":
        target = _class_target(positions, classes, gen)
        return (lambda x: flt.nll_loss(x, target, weight, reduction=reduction),
                lambda x: F.nll_loss(x, target, weight, reduction=reduction), -x.abs())
    if name == "binary_cross_entropy":
        return (lambda x: flt.binary_cross_entropy(x, like, trailing, reduction=reduction),
                lambda x: F.binary_cross_entropy(x, like, trailing, reduction=reduction), torch.sigmoid(x))
    if name == "binary_cross_entropy_with_logits":
        target = (like < 0.3).to(dtype)
        pos_weight = trailing * 2
        return (lambda x: flt.binary_cross_entropy_with_logits(x, target, like, reduction=reduction,
                                                               pos_weight=pos_weight),
                lambda x: F.binary_cross_entropy_with_logits(x, target, like, reduction=reduction,
                                                             pos_weight=pos_weight), x)
    if name in ("kl_div", "kl_div_log_target"):
        log_target = name == "kl_div_log_target"
        target = like.log() if log_target else like
        reduction = "batchmean" if reduction == "mean" else reduction
        return (lambda x: flt.kl_div(x, target, reduction=reduction, log_target=log_target),
                lambda x: _kl_div(x, target, reduction=reduction, log_target=log_target), x)
    if name == "sigmoid_focal_loss":
        target = (like < 0.3).to(dtype)
        return (lambda x: flt.sigmoid_focal_loss(x, target, 0.3, 1.5, reduction),
                lambda x: focal_reference(x, target, 0.3, 1.5, reduction), x)
    if name == "distillation_loss":
        teacher = like * 4
        reduction = "batchmean" if reduction == "mean" else reduction
        return (lambda x: flt.distillation_loss(x, teacher, 2.0, reduction=reduction),
                lambda x: _kl(x, teacher, 2.0, 1, reduction), x)
    if name == "dice_loss":
        target = torch.randint(0, classes, positions, generator=gen)
        reference = _numpy_reference(lambda x, g: monai_dice(x, target.numpy(), weight=weight.numpy(),
                                                             reduction=reduction, grad_output=g))
        return (lambda x: flt.dice_loss(x, target, weight=weight, reduction=reduction), reference, x)
    if name in ("softmax", "log_softmax"):
        return (lambda x: getattr(flt, name)(x, dim=-1), lambda x: getattr(torch, name)(x, dim=-1), x)
    raise AssertionError(name)


LOSSES = ["cross_entropy", "cross_entropy_probabilities", "cross_entropy_z_loss", "nll_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "kl_div_log_target",
          "sigmoid_focal_loss", "distillation_loss", "dice_loss"]
FUNCTIONS = [*LOSSES, "softmax", "log_softmax"]


def values_and_gradients(function, x, upstream_gen):
    """``function(x)`` and the gradient of ``sum(upstream * function(x))``."""
    x = x.detach().requires_grad_(True)
    value = function(x)
    upstream = torch.rand(value.shape, generator=upstream_gen, dtype=value.dtype) * 2 - 0.5
    (grad,) = torch.autograd.grad(value, x, upstream)
    return value.detach(), grad


def assert_matches(ours, reference):
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, **TOLERANCE[reference.dtype], equal_nan=True)


def check(name, shape, reduction, dtype):
    """Ours against the reference, and the input is left as it was."""
    ours, reference, x = case(name, shape, reduction, _generator(), dtype)
    before = x.clone()
    for mine, theirs in zip(values_and_gradients(ours, x, _generator(1)),
                            values_and_gradients(reference, x, _generator(1))):
        assert_matches(mine, theirs)
    torch.testing.assert_close(x, before, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_torch(backend, name, reduction, dtype):
    check(name, (6, 5, 3), reduction, dtype)


@pytest.mark.parametrize("name, shape", [(name, shape) for name in FUNCTIONS for shape in [(7, 4), (5,), (0, 3, 2)]
                                         if not (name == "dice_loss" and len(shape) < 2)], ids=str)
def test_shapes(backend, name, shape):
    """1-D input (a scalar class target), no spatial axes, and no elements."""
    check(name, shape, "none", torch.float64)
    check(name, shape, "sum", torch.float64)


def transposed(x):
    """``x``'s values in memory of reversed axis order: a transposed, contiguous block."""
    return x.permute(*reversed(range(x.dim()))).contiguous().permute(*reversed(range(x.dim())))


def sliced(x):
    """``x``'s values in every other element of a larger tensor: dense in no order."""
    wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    wide[..., ::2] = x
    return wide[..., ::2]


@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "distillation_loss",
                                  "dice_loss", "softmax"])
@pytest.mark.parametrize("layout", [transposed, sliced])
def test_strided_inputs_reach_the_kernel_without_a_copy(backend, monkeypatch, name, layout):
    """The kernel gets a view of the tensor's own memory, and the results equal torch's."""
    kernel = getattr(fl, name)
    seen = []

    def spy(x, *args, **kwargs):
        seen.append(x)
        return kernel(x, *args, **kwargs)

    monkeypatch.setattr(fl, name, spy)
    ours, reference, x = case(name, (6, 5, 3), "mean", _generator(), torch.float32)
    x = layout(x)
    assert not x.is_contiguous()
    for mine, theirs in zip(values_and_gradients(ours, x, _generator(1)),
                            values_and_gradients(reference, x, _generator(1))):
        assert_matches(mine, theirs)
    assert np.shares_memory(seen[0], x.numpy())


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy_probabilities", "binary_cross_entropy_with_logits",
                                  "sigmoid_focal_loss", "distillation_loss", "log_softmax"])
def test_extreme_logits_match_torch(backend, name):
    """Huge, infinite and NaN logits: torch's values and gradients (NaN where torch has NaN)."""
    ours, reference, x = case(name, (6, 5), "none", _generator(), torch.float64)
    extreme = torch.tensor([1e4, -1e4, 80.0, -80.0, 0.0], dtype=torch.float64)
    x = torch.stack([extreme, -extreme, extreme.roll(1), x[3], x[4], x[5]])
    x[4, 2], x[5, 0] = float("inf"), float("nan")
    for mine, theirs in zip(values_and_gradients(ours, x, _generator(1)),
                            values_and_gradients(reference, x, _generator(1))):
        assert_matches(mine, theirs)


def test_kernel_errors_are_clear(backend):
    x = torch.zeros(4, 3)
    with pytest.raises(IndexError, match="class target 7"):
        flt.cross_entropy(x, torch.tensor([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="reduction"):
        flt.binary_cross_entropy_with_logits(x, x, reduction="average")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flt.binary_cross_entropy(x + 2, x)


# ---------------------------------------------------------------------------------------------
# The custom ops.

def _op_arguments(name, x):
    """The op named by the case ``name`` and its arguments for input ``x`` (6 or 0 rows, 5 columns);
    the loss ops then take need_grad."""
    gen = _generator()
    rows = x.shape[0]
    t = torch.randint(0, 5, (6,), generator=gen)[:rows]
    like = torch.rand(6, 5, generator=gen, dtype=x.dtype)[:rows]
    weight = torch.rand(5, generator=gen, dtype=x.dtype)
    upstream = like.clone().requires_grad_(x.requires_grad)
    # A mean over no elements is NaN (torch's too), which opcheck's comparisons take as a mismatch.
    mean, batchmean = ("mean", "batchmean") if rows else ("sum", "sum")
    return {
        "cross_entropy": (OPS.cross_entropy, (x, t, weight, mean, -100, 0.1, 1e-3)),
        "cross_entropy_none": (OPS.cross_entropy, (x, t, None, "none", -100, 0.0, 0.0)),
        "nll_loss": (OPS.nll_loss, (x, t, weight, "none", 2)),
        "binary_cross_entropy": (OPS.binary_cross_entropy, (x.sigmoid(), like, None, "sum")),
        "binary_cross_entropy_with_logits": (OPS.binary_cross_entropy_with_logits,
                                             (x, like, None, weight, mean)),
        "kl_div": (OPS.kl_div, (x, like, batchmean, False)),
        "sigmoid_focal_loss": (OPS.sigmoid_focal_loss, (x, like.round(), "none", 0.25, 2.0)),
        "distillation_loss": (OPS.distillation_loss, (x, like, "sum", 2.0, 1)),
        "distillation_loss_none": (OPS.distillation_loss, (x, like, "none", 2.0, 1)),
        "dice_loss": (OPS.dice_loss, (x, t, None, mean, 1, "softmax", 1e-5)),
        "dice_loss_none": (OPS.dice_loss, (x, like, weight, "none", 1, "sigmoid", 1e-5)),
        "softmax": (OPS.softmax, (x, 1)),
        "log_softmax": (OPS.log_softmax, (x, 0)),
        "softmax_backward": (OPS.softmax_backward, (upstream, torch.softmax(x, 1), 1)),
        "log_softmax_backward": (OPS.log_softmax_backward, (upstream, torch.log_softmax(x, 1), 1)),
    }[name]


OP_CASES = ["cross_entropy", "cross_entropy_none", "nll_loss", "binary_cross_entropy",
            "binary_cross_entropy_with_logits", "kl_div", "sigmoid_focal_loss", "distillation_loss",
            "distillation_loss_none", "dice_loss", "dice_loss_none", "softmax", "log_softmax", "softmax_backward",
            "log_softmax_backward"]
# Their backward pass calls the kernel with grad_output: no gradient from the forward pass.
RESCALED_BY_KERNEL = ("distillation_loss_none", "dice_loss_none")


@pytest.mark.parametrize("name", OP_CASES)
def test_opcheck(name):
    """torch.library.opcheck (schema, fake, autograd registration, AOT dispatch) on every layout."""
    x = torch.randn(6, 5, generator=_generator(), dtype=torch.float64)
    layouts = {"contiguous": x, "transposed": transposed(x), "sliced": sliced(x), "empty": x[:0],
               "float32": x.float()}
    for value in layouts.values():
        for requires_grad in (False, True):
            op, args = _op_arguments(name, value.detach().requires_grad_(requires_grad))
            if "softmax" not in name:
                args = (*args, requires_grad and name not in RESCALED_BY_KERNEL)
            torch.library.opcheck(op, args)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradcheck(backend, name):
    for reduction in ("mean", "none"):
        ours, _, x = case(name, (4, 3, 2), reduction, _generator(), torch.float64)
        assert torch.autograd.gradcheck(ours, (x.detach().requires_grad_(),))


# ---------------------------------------------------------------------------------------------
# Fallbacks to torch.

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "softmax"])
def test_other_dtypes_are_torchs(monkeypatch, name, dtype):
    monkeypatch.setattr(fl, name, None)  # the kernels are not called
    ours, reference, x = case(name, (6, 5, 3), "mean", _generator(), dtype)
    for mine, theirs in zip(values_and_gradients(ours, x, _generator(1)),
                            values_and_gradients(reference, x, _generator(1))):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def test_other_devices_are_torchs(monkeypatch):
    """A non-CPU tensor (the meta device here, as CUDA would be) goes to torch's function."""
    monkeypatch.setattr(fl, "cross_entropy", None)
    loss = flt.cross_entropy(torch.empty(8, 4, device="meta"), torch.empty(8, dtype=torch.long, device="meta"),
                             reduction="none")
    assert loss.device.type == "meta" and loss.shape == (8,)


REFERENCES = {"cross_entropy": F.cross_entropy, "kl_div": _kl_div,
              "distillation_loss": lambda x, t, temperature: _kl(x, t, temperature, 1, "batchmean")}


@pytest.mark.parametrize("name, arguments", [
    ("cross_entropy", lambda x, t: ((x, torch.softmax(t, 1)), {})),
    ("kl_div", lambda x, t: ((x, torch.softmax(t, 1)), {"reduction": "batchmean"})),
    ("distillation_loss", lambda x, t: ((x, t, 2.0), {})),
])
def test_targets_that_require_grad_are_torchs(backend, name, arguments):
    """torch differentiates with respect to such a target: so does the fallback."""
    gen = _generator()
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    ours, theirs = (torch.autograd.grad(function(*args, **kwargs), (x, t))
                    for function, (args, kwargs) in ((getattr(flt, name), arguments(x, t)),
                                                     (REFERENCES[name], arguments(x, t))))
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_backward_hands_on_the_fused_gradient(backend, name, reduction):
    """``loss.backward()`` (an upstream gradient of exactly 1) gets the forward's gradient as it
    is: equal to torch's, again on a second backward of a retained graph (the first one's
    gradient was accumulated, not written over the saved one), and still scaled for a scaled loss."""
    ours, reference, x = case(name, (6, 5, 3), reduction, _generator(), torch.float64)
    grads = []
    for function in (ours, reference):
        leaf = x.detach().requires_grad_(True)
        value = function(leaf)
        value.backward(retain_graph=True)
        once = leaf.grad.clone()
        value.backward(retain_graph=True)
        (3 * value).backward()
        grads.append((once, leaf.grad))
    for mine, theirs in zip(*grads):
        assert_matches(mine, theirs)


@pytest.mark.parametrize("name", ["cross_entropy", "sigmoid_focal_loss", "distillation_loss", "softmax"])
def test_double_backward_is_torchs(backend, name):
    """With create_graph=True the gradient is differentiable: Hessian-vector products equal torch's."""
    ours, reference, x = case(name, (5, 4), "mean", _generator(), torch.float64)
    products = []
    for function in (ours, reference):
        leaf = x.detach().requires_grad_(True)
        value = function(leaf)
        upstream = torch.rand(value.shape, generator=_generator(1), dtype=x.dtype)
        (grad,) = torch.autograd.grad(value, leaf, upstream, create_graph=True)
        direction = torch.rand(x.shape, generator=_generator(2), dtype=x.dtype)
        products.append(torch.autograd.grad(grad, leaf, direction)[0])
    torch.testing.assert_close(*products, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_small_inputs_go_to_torch(monkeypatch, reduction):
    """Below SMALL_INPUT a call is torch's (cross_entropy's straight to its ATen op): the same
    values and gradients, and the same errors."""
    monkeypatch.setitem(flt.SMALL_INPUT, "cross_entropy", 100)
    monkeypatch.setattr(fl, "cross_entropy", None)
    x = torch.randn(9, 11, generator=_generator())
    target = _class_target((9,), 11, _generator(1))
    weight = torch.rand(11, generator=_generator(2)) + 0.5
    options = dict(reduction=reduction, ignore_index=-100, label_smoothing=0.1)
    for mine, theirs in zip(values_and_gradients(lambda v: flt.cross_entropy(v, target, weight, **options), x,
                                                 _generator(3)),
                            values_and_gradients(lambda v: F.cross_entropy(v, target, weight, **options), x,
                                                 _generator(3))):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        flt.cross_entropy(x, target, reduction="avg")


def test_import_needs_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    monkeypatch.delitem(sys.modules, "fastloss.torch")
    with pytest.raises(ImportError, match=r'pip install "fastloss\[torch\]"'):
        importlib.import_module("fastloss.torch")


# ---------------------------------------------------------------------------------------------
# torch.compile and the modules.

def test_compiled_training_step_matches_torch(backend, monkeypatch):
    """A Linear -> cross_entropy -> backward -> SGD step compiles with no graph break (fullgraph),
    runs the kernel, and gives torch's loss and weights."""
    gen = _generator()
    inputs, target = torch.randn(64, 20, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    calls = []
    kernel = fl.cross_entropy
    monkeypatch.setattr(fl, "cross_entropy", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    monkeypatch.setattr(torch._dynamo.config, "trace_autograd_ops", True)  # trace loss.backward()

    def step(model, loss_function):
        loss = loss_function(model(inputs), target)
        loss.backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= 0.1 * parameter.grad
                parameter.grad = None
        return loss.detach()

    models = []
    for _ in range(2):
        torch.manual_seed(7)
        models.append(torch.nn.Linear(20, 10))
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    # One step: a second call of the compiled step updates the weights wrongly with torch's own
    # loss as well (torch 2.13, trace_autograd_ops).
    loss = compiled(models[0], flt.cross_entropy)
    assert calls
    torch.testing.assert_close(loss, step(models[1], F.cross_entropy))
    torch.testing.assert_close(models[0].weight, models[1].weight)
    torch.testing.assert_close(models[0].bias, models[1].bias)


MODULES = [
    ("CrossEntropyLoss", dict(weight=torch.rand(5) + 0.5, ignore_index=1, label_smoothing=0.05), "classes"),
    ("NLLLoss", dict(weight=torch.rand(5) + 0.5, reduction="sum"), "classes"),
    ("BCELoss", dict(weight=torch.rand(5)), "probabilities"),
    ("BCEWithLogitsLoss", dict(weight=torch.rand(5), reduction="none", pos_weight=torch.rand(5) * 2),
     "probabilities"),
    ("KLDivLoss", dict(reduction="batchmean", log_target=True), "log_probabilities"),
]


@pytest.mark.parametrize("name, arguments, target_kind", MODULES, ids=[m[0] for m in MODULES])
def test_modules_are_torchs(backend, name, arguments, target_kind):
    """Constructed as torch's (buffers included) and equal to it in forward and backward."""
    module, reference = getattr(flt, name)(**arguments), getattr(torch.nn, name)(**arguments)
    assert isinstance(module, type(reference))
    assert module.state_dict().keys() == reference.state_dict().keys()
    gen = _generator()
    x = torch.randn(8, 5, generator=gen)
    target = {"classes": torch.randint(0, 5, (8,), generator=gen),
              "probabilities": torch.rand(8, 5, generator=gen),
              "log_probabilities": torch.log_softmax(torch.randn(8, 5, generator=gen), 1)}[target_kind]
    if name == "BCELoss":
        x = x.sigmoid()
    for mine, theirs in zip(values_and_gradients(lambda x: module(x, target), x, _generator(1)),
                            values_and_gradients(lambda x: reference(x, target), x, _generator(1))):
        assert_matches(mine, theirs)


def test_fastloss_only_modules(backend):
    gen = _generator()
    x, like = torch.randn(4, 3, 5, generator=gen), torch.rand(4, 3, 5, generator=gen)
    target = torch.randint(0, 3, (4, 5), generator=gen)
    weight = torch.rand(3, generator=gen)
    dice = flt.DiceLoss(weight=weight, reduction="sum", activation="sigmoid")
    assert torch.equal(dict(dice.named_buffers())["weight"], weight)
    pairs = [
        (flt.SigmoidFocalLoss(0.4, 1.0, "mean")(x, like.round()), focal_reference(x, like.round(), 0.4, 1.0, "mean")),
        (flt.DistillationLoss(3.0, dim=2, reduction="sum")(x, like), _kl(x, like, 3.0, 2, "sum")),
        (dice(x, target), torch.as_tensor(monai_dice(x.numpy(), target.numpy(), activation="sigmoid",
                                                     weight=weight.numpy(), reduction="sum")[0])),
        (flt.CrossEntropyLoss(z_loss=1e-2)(x, target),
         torch.as_tensor(z_loss_cross_entropy(x.numpy(), target.numpy(), 1e-2)[0])),
    ]
    for mine, theirs in pairs:
        torch.testing.assert_close(mine, theirs.to(mine.dtype), rtol=1e-5, atol=1e-6)


def test_docstring_examples(backend):
    """The Examples in fastloss.torch's docstrings run, under each backend."""
    import fastloss.torch
    assert_docstring_examples_run(fastloss.torch)
