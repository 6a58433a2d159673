"""distillation_loss against torch's composed reference: values and autograd gradients."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import fastloss as fl
from reference import _tensor, assert_close
from test_properties import arrays, class_problems, compare

SHAPES = [(5,), (1,), (7, 5), (6, 1), (3, 4, 6), (2, 5, 4, 3), (2, 1, 3, 3), (0, 5), (4, 0), (0, 4, 3, 3),
          (2, 3, 0, 2)]
REDUCTIONS = ["batchmean", "sum", "mean", "none"]
TEMPERATURES = [1.0, 2.5, 0.5]


def reference(student, teacher, temperature=1.0, axis=1, reduction="batchmean", grad_output=None):
    """torch's ``T**2 kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True)`` and the
    autograd gradient of ``sum(grad_output * loss)`` with respect to the student."""
    s = _tensor(student).requires_grad_(True)
    t = _tensor(teacher).to(s.dtype)
    dim = axis if s.dim() > 1 else 0
    with warnings.catch_warnings():  # torch warns that "mean" is not "batchmean"
        warnings.simplefilter("ignore", UserWarning)
        loss = F.kl_div(F.log_softmax(s / temperature, dim), F.log_softmax(t / temperature, dim),
                        reduction=reduction, log_target=True) * temperature ** 2
    upstream = torch.ones_like(loss) if grad_output is None else _tensor(grad_output).to(loss.dtype)
    loss.backward(upstream.expand_as(loss))
    return loss.detach().numpy(), s.grad.numpy()


def logits(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def upstream_for(rng, reduction, shape, dtype):
    return rng.uniform(-2, 2, shape).astype(dtype) if reduction == "none" else 0.7


def check(student, teacher, dtype, *, equal_nan=False, **options):
    """fastloss against torch, the loss alone as with the gradient, and nothing the caller passed
    is modified."""
    passed = [a for a in (student, teacher, options.get("grad_output")) if isinstance(a, np.ndarray)]
    originals = [a.copy() for a in passed]
    loss, grad = fl.distillation_loss(student, teacher, return_grad=True, **options)
    ref_loss, ref_grad = reference(student, teacher, **options)
    if equal_nan:
        compare(loss, ref_loss, np.dtype(dtype).type)
        compare(grad, ref_grad, np.dtype(dtype).type)
    else:
        assert_close(loss, ref_loss, dtype)
        assert_close(grad, ref_grad, dtype)
    if options.get("reduction", "batchmean") != "none":
        assert isinstance(loss, np.generic)
    options.pop("grad_output", None)
    np.testing.assert_array_equal(fl.distillation_loss(student, teacher, **options), loss)
    for before, after in zip(originals, passed):
        np.testing.assert_array_equal(before, after)
    return loss, grad


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torch(backend, rng, shape, dtype, temperature, reduction):
    student, teacher = logits(rng, shape, dtype), logits(rng, shape, dtype)
    check(student, teacher, dtype, temperature=temperature, reduction=reduction,
          grad_output=upstream_for(rng, reduction, shape, dtype))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float16_computes_in_float32(backend, rng, reduction):
    student, teacher = logits(rng, (6, 9, 5), np.float16), logits(rng, (6, 9, 5), np.float16)
    loss, grad = check(student, teacher, np.float16, temperature=2.5, reduction=reduction,
                       grad_output=upstream_for(rng, reduction, student.shape, np.float16))
    assert grad.dtype == np.float16


def test_teacher_is_cast_to_the_students_dtype(backend, rng):
    student = logits(rng, (5, 7), np.float32)
    teacher = logits(rng, (5, 7), np.float64)
    loss, grad = fl.distillation_loss(student, teacher, temperature=2.0, return_grad=True)
    ref_loss, ref_grad = reference(student, teacher.astype(np.float32), temperature=2.0)
    assert_close(loss, ref_loss, np.float32)
    assert_close(grad, ref_grad, np.float32)


def test_integer_input_is_promoted_to_float64(backend, rng):
    student, teacher = rng.integers(-5, 5, (4, 6)), rng.integers(-5, 5, (4, 6))
    loss, grad = fl.distillation_loss(student, teacher, temperature=2.5, return_grad=True)
    ref_loss, ref_grad = reference(student.astype(np.float64), teacher.astype(np.float64), temperature=2.5)
    assert_close(loss, ref_loss, np.float64)
    assert_close(grad, ref_grad, np.float64)


@pytest.mark.parametrize("shape", [(9, 4), (2, 4, 5, 6), (3, 7, 2, 3, 4)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_channels_last_axis(backend, rng, shape, reduction):
    """axis=-1 on (N, ..., C) data equals torch's log_softmax over dim -1; batchmean divides by N."""
    student, teacher = logits(rng, shape, np.float32), logits(rng, shape, np.float32)
    check(student, teacher, np.float32, temperature=2.5, axis=-1, reduction=reduction,
          grad_output=upstream_for(rng, reduction, shape, np.float32))


def _layouts(rng, dtype):
    base = logits(rng, (6, 5, 8, 7), dtype)
    yield np.asfortranarray(base)
    yield base[:, :, ::2, 1:]
    yield base[::-1, :, :, ::-1]
    yield np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    yield base[:, ::2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_memory_layouts(backend, rng, dtype, reduction):
    """Student and teacher in every layout, each paired with a teacher of another layout."""
    students = list(_layouts(rng, dtype))
    teachers = [logits(rng, s.shape, dtype) for s in students]
    teachers = [np.asfortranarray(t) if k % 2 else t for k, t in enumerate(teachers)]
    for student, teacher in zip(students, teachers):
        check(student, teacher, dtype, temperature=0.5, reduction=reduction,
              grad_output=upstream_for(rng, reduction, student.shape, dtype))


def test_read_only_inputs(backend, rng):
    for shape in [(6, 7), (2, 5, 3, 4)]:
        student, teacher = logits(rng, shape, np.float32), logits(rng, shape, np.float32)
        student.flags.writeable = teacher.flags.writeable = False
        check(student, teacher, np.float32, temperature=2.5, reduction="none",
              grad_output=upstream_for(rng, "none", shape, np.float32))


def test_grad_output_broadcasts_for_none(backend, rng):
    student, teacher = logits(rng, (4, 6, 5), np.float64), logits(rng, (4, 6, 5), np.float64)
    check(student, teacher, np.float64, reduction="none", temperature=2.5, grad_output=rng.uniform(-2, 2, (6, 1)))
    check(student, teacher, np.float64, reduction="none", grad_output=np.float64(3.0))


@pytest.mark.parametrize("shape", [(6, 40), (3, 5, 7, 9)], ids=str)
@pytest.mark.parametrize("reduction", ["batchmean", "none"])
@pytest.mark.parametrize("into", ["student", "teacher"])
def test_gradient_in_place(backend, rng, shape, reduction, into):
    """gradient_out may be either input: the gradient is written over it, the other is read whole."""
    student, teacher = logits(rng, shape, np.float32), logits(rng, shape, np.float32)
    upstream = upstream_for(rng, reduction, shape, np.float32)
    ref_loss, ref_grad = reference(student, teacher, temperature=2.5, reduction=reduction, grad_output=upstream)
    out = student if into == "student" else teacher
    loss, grad = fl.distillation_loss(student, teacher, temperature=2.5, reduction=reduction,
                                      return_grad=True, grad_output=upstream, gradient_out=out)
    assert grad is out
    assert_close(loss, ref_loss, np.float32)
    assert_close(out, ref_grad, np.float32)


def test_gradient_in_place_of_a_strided_student(backend, rng):
    full = logits(rng, (4, 6, 10, 9), np.float32)
    student = full[:, :, ::2]
    teacher = logits(rng, student.shape, np.float32)
    between = full[:, :, 1::2].copy()
    ref_loss, ref_grad = reference(student.copy(), teacher, temperature=2.5)
    loss, grad = fl.distillation_loss(student, teacher, temperature=2.5, return_grad=True, gradient_out=student)
    assert grad is student
    assert_close(loss, ref_loss, np.float32)
    assert_close(student, ref_grad, np.float32)
    np.testing.assert_array_equal(full[:, :, 1::2], between)


def test_gradient_out_of_another_layout(backend, rng):
    student, teacher = logits(rng, (8, 5, 6), np.float64), logits(rng, (8, 5, 6), np.float64)
    out = np.asfortranarray(np.full(student.shape, np.nan))
    _, grad = fl.distillation_loss(student, teacher, return_grad=True, gradient_out=out)
    assert grad is out
    assert_close(out, reference(student, teacher)[1], np.float64)


def test_student_as_its_own_teacher(backend, rng):
    """The same array twice: loss 0, and gradient 0 up to the rounding of ``a e - a e`` (which a
    fused multiply-add rounds once)."""
    x = logits(rng, (5, 9), np.float32)
    loss, grad = fl.distillation_loss(x, x, temperature=2.5, return_grad=True)
    assert loss == 0
    np.testing.assert_allclose(grad, 0, atol=1e-7)


@pytest.mark.parametrize("shape", [(6, 33), (2, 33, 3, 4)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_huge_logits(backend, rng, shape, dtype, temperature):
    """Logits of +-1e4 among ordinary ones, in student and teacher, and rows made only of them."""
    student, teacher = logits(rng, shape, dtype), logits(rng, shape, dtype)
    for x in (student, teacher):
        picks = rng.random(shape) < 0.1
        x[picks] = rng.choice([1e4, -1e4], size=int(picks.sum()))
    student[0] = 1e4
    teacher[1] = -1e4
    for reduction in REDUCTIONS:
        check(student, teacher, dtype, temperature=temperature, reduction=reduction,
              grad_output=upstream_for(rng, reduction, shape, dtype))


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 2, 3)], ids=str)
@pytest.mark.parametrize("value", [np.nan, -np.inf, np.inf], ids=["nan", "-inf", "inf"])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_nan_and_inf_propagate_as_in_torch(backend, rng, shape, value, reduction):
    """A special value in the student's row 1, the teacher's row 3, and a teacher row made of it.
    A -inf teacher logit makes its element's loss NaN (0 * -inf) but not the gradient, as in torch."""
    for dtype in (np.float32, np.float64):
        student, teacher = logits(rng, shape, dtype), logits(rng, shape, dtype)
        student[1, 2] = value
        teacher[3, 4] = value
        teacher[5] = value
        check(student, teacher, dtype, equal_nan=True, temperature=2.5, reduction=reduction,
              grad_output=upstream_for(rng, reduction, shape, dtype))


@pytest.mark.parametrize("shape", [(90, 32000), (2, 8, 512, 300)], ids=str)
def test_streamed_gradient(backend, rng, shape):
    """A gradient large enough to be written with streaming stores, on rows and on tiles."""
    student, teacher = logits(rng, shape, np.float32), logits(rng, shape, np.float32)
    check(student, teacher, np.float32, temperature=2.5)


@pytest.mark.parametrize("shape", [(300, 700), (3, 40, 60, 50)], ids=str)
def test_same_result_for_any_thread_count(backend, rng, shape):
    student, teacher = logits(rng, shape, np.float32), logits(rng, shape, np.float32)
    previous = fl.get_num_threads()
    results = []
    try:
        for threads in (1, previous):
            fl.set_num_threads(threads)
            results.append(fl.distillation_loss(student, teacher, temperature=2.5, return_grad=True))
    finally:
        fl.set_num_threads(previous)
    (loss1, grad1), (loss2, grad2) = results
    assert loss1 == loss2
    np.testing.assert_array_equal(grad1, grad2)


def _call(**changes):
    arguments = dict(student_logits=np.zeros((3, 4)), teacher_logits=np.zeros((3, 4)))
    arguments.update(changes)
    return fl.distillation_loss(**arguments)


@pytest.mark.parametrize("changes, error, match", [
    (dict(teacher_logits=np.zeros((3, 5))), ValueError, "teacher_logits must have the input's shape"),
    (dict(teacher_logits=np.zeros((4, 3))), ValueError, "teacher_logits must have the input's shape"),
    (dict(student_logits=np.float64(1.0), teacher_logits=np.float64(1.0)), ValueError, "at least one dimension"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=np.inf), ValueError, "temperature"),
    (dict(temperature=np.nan), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(temperature=None), TypeError, "temperature"),
    (dict(reduction="average"), ValueError, "reduction must be one of"),
    (dict(axis=2), ValueError, "axis"),
    (dict(grad_output=1.0), ValueError, "need return_grad"),
    (dict(gradient_out=np.zeros((3, 4))), ValueError, "need return_grad"),
    (dict(return_grad=True, grad_output=np.ones(3)), ValueError, "must be a scalar"),
    (dict(return_grad=True, reduction="none", grad_output=np.ones((2, 4))), ValueError, "does not broadcast"),
    (dict(return_grad=True, gradient_out=np.zeros((3, 4), np.float32)), TypeError, "dtype"),
    (dict(return_grad=True, gradient_out=np.zeros((4, 3))), ValueError, "shape"),
    (dict(return_grad=True, gradient_out=[[0.0] * 4] * 3), TypeError, "NumPy array"),
    (dict(student_logits=np.zeros((3, 4), complex)), TypeError, "cannot be a loss"),
    (dict(teacher_logits=np.array([["a"] * 4] * 3)), TypeError, "cannot be a loss"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_errors(backend, changes, error, match):
    with pytest.raises(error, match=match):
        _call(**changes)


def test_nothing_is_written_on_error(backend):
    out = np.full((3, 4), 7.0)
    read_only = np.zeros((3, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="grad_output"):
        _call(return_grad=True, grad_output=np.ones(2), gradient_out=out)
    with pytest.raises(ValueError, match="temperature"):
        _call(return_grad=True, temperature=0, gradient_out=out)
    np.testing.assert_array_equal(out, 7.0)
    with pytest.raises(ValueError, match="read-only"):
        _call(return_grad=True, gradient_out=read_only)


@st.composite
def distillation_problems(draw):
    """The logits, axis and dtype of a cross-entropy problem (`class_problems`), a teacher of
    their shape, and the distillation loss's options."""
    problem = draw(class_problems())
    student, axis = problem["x"], problem["axis"]
    teacher = draw(arrays(student.shape, student.dtype))
    reduction = draw(st.sampled_from(REDUCTIONS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grad_output = (rng.uniform(-2, 2, student.shape).astype(student.dtype) if reduction == "none"
                   else float(rng.uniform(-2, 2)))
    temperature = draw(st.sampled_from(TEMPERATURES + [4.0]))
    return dict(student=student, teacher=teacher, temperature=temperature, axis=axis, reduction=reduction,
                grad_output=grad_output)


@given(problem=distillation_problems())
def test_property_matches_torch(backend, problem):
    student, teacher = problem.pop("student"), problem.pop("teacher")
    loss, grad = fl.distillation_loss(student, teacher, **problem, return_grad=True)
    ref_loss, ref_grad = reference(student, teacher, **problem)
    compare(loss, ref_loss, student.dtype.type)
    compare(grad, ref_grad, student.dtype.type)


@given(problem=distillation_problems())
def test_property_kl_laws(backend, problem):
    """On finite logits: the loss of every position (summed over its classes) >= 0 up to rounding,
    0 with the student as its own teacher, and the gradient sums to 0 over the classes (a shift of
    a position's logits does not change its softmax)."""
    student = np.nan_to_num(problem["student"].astype(np.float64), posinf=1e4, neginf=-1e4)
    teacher = np.nan_to_num(problem["teacher"].astype(np.float64), posinf=1e4, neginf=-1e4)
    axis = problem["axis"] if student.ndim > 1 else 0
    temperature = problem["temperature"]
    loss, grad = fl.distillation_loss(student, teacher, temperature=temperature, axis=axis,
                                      reduction="none", return_grad=True)
    scale = 1 + (np.abs(student).max(initial=0) + np.abs(teacher).max(initial=0)) * temperature
    assert (loss.sum(axis=axis) >= -1e-12 * scale).all()
    np.testing.assert_allclose(grad.sum(axis=axis), 0, atol=1e-9 * temperature)
    same, same_grad = fl.distillation_loss(student, student, temperature=temperature, axis=axis,
                                           reduction="none", return_grad=True)
    assert not same.any()
    np.testing.assert_allclose(same_grad, 0, atol=1e-15 * temperature)
