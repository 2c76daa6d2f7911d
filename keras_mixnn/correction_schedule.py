"""MixNN's schedule: warm-up, mixing, the mixup phase and the correcting epochs.

Pure Python (no Keras), so recipes and the command line can use it before a
backend is chosen. `Schedule` writes each phase once, as operations on an
`ops` namespace: the default, `PYTHON_OPS`, answers for a Python int epoch;
`keras.ops` answers in-graph for the model's epoch variable.
"""

import math
import operator
import types
import typing

PYTHON_OPS = types.SimpleNamespace(
    convert_to_tensor=bool,
    equal=operator.eq,
    greater_equal=operator.ge,
    less=operator.lt,
    logical_and=lambda first, second: bool(first) and bool(second),
    mod=operator.mod,
)
"""The names of `keras.ops` that `Schedule` uses, for Python ints."""


class Schedule(typing.NamedTuple):
    """Which phase of MixNN training an epoch (0-based, warm-up counted) is in.

    Attributes:
        warmup_epochs: epochs of plain cross-entropy first.
        correction_start: `E_s`, the first epoch that may correct targets.
        correction_every: correct in every n-th epoch from `E_s`.
        method: `"mixnn"`, `"ce"` or `"mixup"`.
        label_correction: whether targets are corrected at all.
        warmup_mixup: whether the epochs from warm-up's end to `E_s` train
            plain mixup (the released code).
    """

    warmup_epochs: int
    correction_start: int
    correction_every: int = 1
    method: str = "mixnn"
    label_correction: bool = True
    warmup_mixup: bool = False

    def mixes(self, epoch, ops=PYTHON_OPS):
        """Whether the epoch mixes samples with partners (MixNN or mixup, after warm-up)."""
        if self.method == "ce":
            return ops.convert_to_tensor(False)
        return ops.greater_equal(epoch, self.warmup_epochs)

    def estimates(self, epoch):
        """Whether the epoch runs on estimates of a per-epoch pass (MixNN after warm-up); Python ints only."""
        return self.method == "mixnn" and epoch >= self.warmup_epochs

    def trains_mixup(self, epoch, ops=PYTHON_OPS):
        """Whether the epoch trains `warmup_mixup`'s plain mixup instead of MixNN."""
        if not (self.method == "mixnn" and self.warmup_mixup):
            return ops.convert_to_tensor(False)
        return ops.logical_and(ops.greater_equal(epoch, self.warmup_epochs), ops.less(epoch, self.correction_start))

    def corrects(self, epoch, ops=PYTHON_OPS):
        """Whether the epoch corrects the targets (Eq. 14).

        Corrections begin at `correction_start`, never during warm-up, and
        then come every `correction_every` epochs counted from
        `correction_start`.
        """
        if not (self.method == "mixnn" and self.label_correction):
            return ops.convert_to_tensor(False)
        start = max(self.correction_start, self.warmup_epochs)
        return ops.logical_and(
            ops.greater_equal(epoch, start),
            ops.equal(ops.mod(epoch - self.correction_start, self.correction_every), 0),
        )


def corrects_in(epoch, *, correction_start, warmup_epochs, correction_every):
    """Whether epoch `epoch` (0-based, warm-up counted) corrects the targets (Eq. 14).

    `Schedule.corrects` for a MixNN run that corrects labels.
    """
    return Schedule(warmup_epochs, correction_start, correction_every).corrects(epoch)


def correcting_epochs(num_epochs, *, correction_start, warmup_epochs, correction_every):
    """How many of the epochs `0 .. num_epochs - 1` correct the targets."""
    return sum(
        corrects_in(
            epoch, correction_start=correction_start, warmup_epochs=warmup_epochs, correction_every=correction_every
        )
        for epoch in range(num_epochs)
    )


def corrections_to_leave_label(momentum):
    """Fewest corrections after which a target's argmax can leave its given label.

    After `n` corrections `t = alpha^n * y + (1 - alpha^n) * (average of
    predictions)`, so the given label keeps at least `alpha^n` of the mass
    and stays the argmax until `alpha^n < 1/2`: 7 corrections at
    `alpha = 0.9`, 1 at `alpha = 0`.

    Args:
        momentum: `alpha` of Eq. 14, in `[0, 1)`.
    """
    if momentum == 0:
        return 1
    return math.floor(math.log(0.5) / math.log(momentum)) + 1


def relabels(*, method, label_correction, correction_changes_labels):
    """Whether a run's corrections are meant to change labels, so that too few of them fall short."""
    return method == "mixnn" and label_correction and correction_changes_labels


def correction_shortfall(num_epochs, *, momentum, correction_start, warmup_epochs, correction_every):
    """A sentence saying that label correction cannot change a label in `num_epochs`, or `None` if it can."""
    timing = dict(correction_start=correction_start, warmup_epochs=warmup_epochs, correction_every=correction_every)
    done = correcting_epochs(num_epochs, **timing)
    needed = corrections_to_leave_label(momentum)
    if done >= needed:
        return None
    return (
        f"Label correction runs in {done} of the {num_epochs} epochs (from correction_start={correction_start}, "
        f"every {correction_every}), but with momentum={momentum} a target can leave its given label only after "
        f"{needed} corrections: no label will change. Train longer, start correction earlier or lower the momentum"
    )
