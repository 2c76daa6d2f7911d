"""When label correction acts, and how many corrections it takes to change a label.

Pure Python (no Keras), so recipes and the command line can use it before a
backend is chosen.
"""

import math


def corrects_in(epoch, *, correction_start, warmup_epochs, correction_every):
    """Whether epoch `epoch` (0-based, warm-up counted) corrects the targets (Eq. 14).

    Corrections begin at `correction_start`, never during warm-up, and then
    come every `correction_every` epochs counted from `correction_start`.
    """
    if epoch < max(correction_start, warmup_epochs):
        return False
    return (epoch - correction_start) % correction_every == 0


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
