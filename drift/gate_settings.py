"""The gate's settings: how sure it must be before it warns and before it confirms,
and how its false-confirm budget is shared (see :mod:`drift.gate`)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drift.stats.registry import default_act_tests, default_min_effect


class GateSettings(BaseModel):
    """How sure the gate must be before it warns and before it confirms.

    Examples
    --------
    >>> GateSettings().confirm_r, GateSettings().confirm_w
    (2, 3)
    >>> try:
    ...     GateSettings(confirm_r=4)
    ... except ValueError as exc:
    ...     print("confirm_r (4) must be between 1 and confirm_w (3)" in str(exc))
    True
    """

    model_config = ConfigDict(extra="forbid")

    #: family-wise level of one night's act/don't-act decision (Bonferroni across tests)
    alpha: float = Field(0.01, gt=0.0, lt=1.0)
    #: confirm when this many of the last ``confirm_w`` nights were significant
    confirm_r: int = Field(2, ge=1)
    confirm_w: int = Field(3, ge=1)
    #: at most one false confirm per this many quiet nights (whole gate)
    arl0_nights: float = Field(365.0, gt=1.0)
    #: out-of-control flag rate p1 of every detector's CUSUM; None: twice the expected ID rate
    cusum_rate: float | None = Field(None, gt=0.0, lt=1.0)
    #: the CUSUM's in-control rate p0 is this quantile of the calibration's true flag
    #: rate Beta(K, m - K + 1), not its mean: an unluckily low threshold (a stream whose
    #: ID rate sits above nominal for good) then does not keep the CUSUM near alarm
    cusum_null_quantile: float = Field(0.99, ge=0.5, lt=1.0)
    #: minimum effect size per test name for a small p-value to count; defaults to each
    #: registered statistic's ``min_effect`` (drift.stats.registry)
    min_effect: dict[str, float] = Field(default_factory=default_min_effect)
    #: test names in the act family; others (e.g. per-column tests) are evidence only;
    #: defaults to the registered statistics of family ``act``
    act_tests: tuple[str, ...] = Field(default_factory=default_act_tests)
    #: FDR level at which a raw input column counts as moved (shift typing only)
    column_fdr: float = Field(0.1, gt=0.0, lt=1.0)
    #: the accuracy_drop test acts when the estimated accuracy is significantly more than
    #: this far below the reference accuracy
    max_accuracy_drop: float = Field(0.05, gt=0.0, lt=1.0)

    # --- alarms that matter (issue 14): practical floor, slow drift, input events ---
    #: practical floor: a detector's flag rate must exceed both its calibrated rate and its
    #: recent level by this much (points as a fraction) for its tests to make a night count
    min_excess_rate: float = Field(0.01, ge=0.0, lt=1.0)
    #: ... or fall below both by this much (overconfidence under shift: the low side)
    min_deficit_rate: float = Field(0.03, ge=0.0, lt=1.0)
    #: tests whose ``min_effect`` is already in the user's units: practical on their own
    practical_tests: tuple[str, ...] = ("class_mix", "accuracy_drop")
    #: once a detector's recent level has drifted by half a floor, a night must step away
    #: from it by this many standard errors of its rate too (sampling noise is no step)
    step_z: float = Field(4.0, ge=0.0)
    #: a detector's recent level: the median of its rates on the last ``gradual_w`` quiet
    #: nights that lie at least ``recent_lag`` nights back
    recent_lag: int = Field(7, ge=1)
    #: a ``gradual`` warning when ``gradual_r`` of the last ``gradual_w`` nights were
    #: statistically decisive but below the practical floor
    gradual_r: int = Field(7, ge=1)
    gradual_w: int = Field(14, ge=1)
    #: per-column tests open ``input`` events (columns moved, OOD rates did not)
    input_events: bool = True
    #: the share of the false-event budget (1 / arl0_nights per night) input events get
    input_share: float = Field(0.25, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> GateSettings:
        if not 1 <= self.confirm_r <= self.confirm_w:
            raise ValueError(
                f"confirm_r ({self.confirm_r}) must be between 1 and confirm_w ({self.confirm_w})"
            )
        if not 1 <= self.gradual_r <= self.gradual_w:
            raise ValueError(
                f"gradual_r ({self.gradual_r}) must be between 1 and gradual_w ({self.gradual_w})"
            )
        if self.persistence_false_rate() + self.input_level() >= 1.0 / self.arl0_nights:
            raise ValueError(
                "alpha too large for arl0_nights: the r-of-w rule and the input events' "
                "share would exceed the false-event budget"
            )
        return self

    def persistence_false_rate(self) -> float:
        """Per-night false-confirm rate of the r-of-w rule for independent nights."""
        return math.comb(self.confirm_w, self.confirm_r) * self.alpha**self.confirm_r

    def input_level(self) -> float:
        """The level a night's smallest BH-adjusted column p-value is judged at for an
        ``input`` event: its share of the per-night false-event budget (0 when off).

        >>> round(GateSettings().input_level() * 365, 6)
        0.25
        """
        return self.input_share / self.arl0_nights if self.input_events else 0.0

    def gradual_false_rate(self) -> float:
        """Per-night rate of a false ``gradual`` warning: ``gradual_r`` of ``gradual_w``
        independent quiet nights decisive at ``alpha`` (a binomial tail; tiny).

        >>> GateSettings().gradual_false_rate() < 1e-9
        True
        """
        from scipy import stats

        return float(stats.binom(self.gradual_w, self.alpha).sf(self.gradual_r - 1))

    def cusum_arl0(self, n_detectors: int) -> float:
        """In-control run length each detector's CUSUM is set for (its share of the budget:
        what the r-of-w rule, the input events and gradual warnings leave)."""
        spare_rate = (
            1.0 / self.arl0_nights
            - self.persistence_false_rate()
            - self.input_level()
            - self.gradual_false_rate()
        )
        return max(n_detectors, 1) / spare_rate
