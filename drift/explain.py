"""Why a night got its verdict, in words: what `drift explain` prints.

The explanation is read back from the event store: the gate's evidence as it
decided (``batches.summary``; for a night decided before that was stored, the
gate is re-run from the stored ``drift_tests``, ``detector_scores`` and the
previous night's ``gate_state``, which gives the same decision), the detectors'
flag rates and the event the night belongs to.

Examples
--------
>>> night = Explanation("digits_demo", "2026-11-07", "ok", None, None, [], 0.01, 8, [], [], {}, [], [])
>>> night.lines()[0]
'digits_demo 2026-11-07: OK - no test passed its bar, no CUSUM alarmed'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drift import gate
from drift.config import MonitorConfig, Settings
from drift.gate import fmt, is_column_test
from drift.stats import TestResult, expected_flag_rate
from drift.store import repo
from drift.store.db import session_scope
from drift.store.models import Batch, DriftEvent, DriftEventBatch, NightPerformance

#: input columns listed, most moved first
TOP_COLUMNS = 5


class ExplainError(LookupError):
    """No decided night to explain; the message says why."""


@dataclass(frozen=True)
class Explanation:
    """One night's verdict and the evidence behind it (``as_dict`` is the ``--json`` form).

    ``tests``: the act-family tests, decisive first (p-value against its ``bar``, effect
    against its ``min_effect``); ``cusum``: each detector's chart (sum against its alarm
    level, both in log-likelihood-ratio units); ``persistence``: the r-of-w rule;
    ``detectors``: flag rate against the calibrated rate; ``columns``: the input
    columns that moved most (BH-adjusted p-values).
    """

    monitor: str
    date: str
    verdict: str
    shift_type: str | None
    event: dict[str, Any] | None
    reasons: list[str]
    alpha: float
    family_size: int
    tests: list[dict[str, Any]]
    cusum: list[dict[str, Any]]
    persistence: dict[str, Any]
    detectors: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    #: the night's accuracy by method (cbpe, atc, realized: accuracy, low, high, n_rows),
    #: the reference accuracy and the gate's max_accuracy_drop; empty when none is stored
    performance: dict[str, Any] = field(default_factory=dict)
    #: the event kind the night belongs to: shift | input | gradual (None: ok)
    kind: str | None = None
    #: the act-family tests that passed their bar and minimum effect (statistical test)
    statistical: list[str] = field(default_factory=list)
    #: per detector: its rate against its calibrated rate and recent level (practical test)
    practical: list[dict[str, Any]] = field(default_factory=list)
    #: the gradual rule's count of decisive-but-not-practical nights, and the input columns
    gradual: dict[str, Any] = field(default_factory=dict)
    input_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _two_tests(self) -> list[str]:
        """The statistical and the practical test, and the rules built on them."""
        if not self.practical:
            return []  # a night decided before the practical test existed
        stat = ", ".join(self.statistical) if self.statistical else "no test passed its bar"
        out = [f"statistical test: {stat}"]
        first = self.practical[0]
        out.append(
            f"practical test (a rate {first['min_excess'] * 100:g} points above, or "
            f"{first['min_deficit'] * 100:g} below, both its calibrated rate and its recent level):"
        )
        for d in self.practical:
            recent = f", {d['recent']:.1%} recently" if d["recent"] is not None else ""
            verdict = "PASSES (above)" if d["up"] else "PASSES (below)" if d["down"] else "-"
            out.append(
                f"  {verdict:14s} {d['detector']}: {d['rate']:.1%} vs {d['expected']:.1%} "
                f"calibrated{recent}: {d['above_both'] * 100:+.1f} points"
            )
        g = self.gradual
        if g:
            out.append(
                f"gradual: {sum(g['history'])} of the last {len(g['history'])} nights decisive "
                f"but below the practical floor (warns at {g['r']})"
            )
        if self.input_columns:
            out.append(f"input drift (columns moved, OOD rates did not): {', '.join(self.input_columns)}")
        return out

    def lines(self) -> list[str]:
        """The explanation in words, one finding a line."""
        decisive = [t for t in self.tests if t["decisive"]]
        alarms = [c for c in self.cusum if c["alarm"]]
        why = (
            f"{len(decisive)} decisive test(s), {len(alarms)} CUSUM alarm(s)"
            if decisive or alarms
            else "no test passed its bar, no CUSUM alarmed"
        )
        head = f"{self.monitor} {self.date}: {self.verdict.upper()} - {why}"
        if self.kind and self.kind != "shift":
            head += f"; {self.kind} warning"
        if self.shift_type:
            head += f"; {self.shift_type} shift"
        if self.event:
            head += f"; event {self.event['id']} ({self.event['status']})"
        out = [head]
        if self.tests:
            out.append(
                f"tests that decide (alpha {fmt(self.alpha)} / {self.family_size} tests = bar "
                f"{fmt(self.tests[0]['bar'])}):"
            )
        for t in self.tests:
            small = t["p_value"] <= t["bar"] and t["effect_size"] >= t["min_effect"]
            mark = "DECISIVE" if t["decisive"] else "SMALL" if small else "-"
            p_side = "<=" if t["p_value"] <= t["bar"] else ">"
            e_side = ">=" if t["effect_size"] >= t["min_effect"] else "<"
            out.append(
                f"  {mark:8s} {_label(t)}: p={fmt(t['p_value'])} {p_side} {fmt(t['bar'])}, "
                f"effect {fmt(t['effect_size'])} {e_side} minimum {fmt(t['min_effect'])}"
            )
        out += self._two_tests()
        for c in self.cusum:
            side = "above" if c["alarm"] else "below"
            out.append(
                f"CUSUM[{c['detector']}] {fmt(c['sum'])} {side} its alarm level "
                f"{fmt(c['alarm_level'])} (log-likelihood ratio, flag rate {c['p1']:.1%} "
                f"against {c['p0']:.1%})"
            )
        p = self.persistence
        if p:
            out.append(
                f"persistence: {p['significant_nights']} of the last {len(p['history'])} nights "
                f"significant (confirms at {p['confirm_r']})"
            )
        if self.performance:
            out.append(_performance_line(self.performance))
        for d in self.detectors:
            moved = " MOVED" if d["moved"] else ""
            out.append(
                f"detector {d['detector']}: {d['ood_rate']:.1%} flagged vs {d['expected_rate']:.1%} "
                f"calibrated ({d['n_flagged']} of {d['n_rows']} rows){moved}"
            )
        if self.columns:
            out.append("input columns that moved most (BH-adjusted):")
        for c in self.columns:
            moved = "MOVED" if c["moved"] else "-"
            out.append(
                f"  {moved:8s} {c['column']} ({c['test']}): p={fmt(c['p_value'])}, "
                f"effect {fmt(c['effect_size'])}"
            )
        return out


def _performance_line(performance: dict[str, Any]) -> str:
    """The night's accuracy in one line: estimates against the reference, realized if labelled.

    >>> _performance_line({"reference_accuracy": 0.98, "max_accuracy_drop": 0.05,
    ...     "cbpe": {"accuracy": 0.9, "low": 0.88, "high": 0.92, "n_rows": 600},
    ...     "atc": {"accuracy": 0.91, "low": 0.89, "high": 0.93, "n_rows": 600}})
    'accuracy: estimated 0.9 [0.88, 0.92] by CBPE, 0.91 [0.89, 0.93] by ATC vs reference 0.98 (drop 0.08; accuracy_drop acts on a significant drop beyond 0.05); no labels yet'
    """
    parts = [
        f"{fmt(p['accuracy'])} [{fmt(p['low'])}, {fmt(p['high'])}] by {method.upper()}"
        for method in ("cbpe", "atc")
        if (p := performance.get(method))
    ]
    line = "accuracy: " + ("estimated " + ", ".join(parts) if parts else "not estimated")
    reference = performance.get("reference_accuracy")
    if reference is not None:
        line += f" vs reference {fmt(reference)}"
        if "cbpe" in performance:
            line += (
                f" (drop {fmt(reference - performance['cbpe']['accuracy'])}; accuracy_drop acts "
                f"on a significant drop beyond {fmt(performance['max_accuracy_drop'])})"
            )
    realized = performance.get("realized")
    if realized:
        return line + (
            f"; realized {fmt(realized['accuracy'])} [{fmt(realized['low'])}, "
            f"{fmt(realized['high'])}] on {realized['n_rows']} labelled rows"
        )
    return line + "; no labels yet"


def _label(test: dict[str, Any]) -> str:
    return f"{test['test']}[{test['subject']}]" if test["subject"] else test["test"]


def _stored_evidence(
    session: Session, monitor: MonitorConfig, batch: Batch
) -> tuple[dict[str, Any], list[str], str | None]:
    """The gate's evidence, reasons and shift type for the night, as it decided."""
    summary = batch.summary or {}
    if "evidence" in summary:
        return summary["evidence"], list(summary.get("reasons", [])), summary.get("shift_type")
    from drift.pipeline.nightly import night_evidence

    previous = repo.previous_batch(session, batch.monitor_id, batch.batch_date)
    decision = gate.decide(
        monitor.gate,
        previous.gate_state if previous else None,
        night_evidence(session, batch, batch.batch_date),
    )
    return decision.evidence, decision.reasons, decision.shift_type


def _event(session: Session, batch: Batch) -> dict[str, Any] | None:
    event = session.scalars(
        select(DriftEvent)
        .join(DriftEventBatch, DriftEventBatch.event_id == DriftEvent.id)
        .where(DriftEventBatch.batch_id == batch.id)
        .order_by(DriftEvent.id.desc())
        .limit(1)
    ).first()
    return {"id": event.id, "status": event.status} if event else None


def explain_night(settings: Settings, monitor: MonitorConfig, night: date) -> Explanation:
    """Explain the verdict of ``monitor`` on ``night``; :class:`ExplainError` if it has none."""
    with session_scope(settings.db_url) as session:
        batch = repo.find_batch(session, monitor.name, night)
        if batch is None:
            raise ExplainError(f"monitor '{monitor.name}' has no night {night}")
        if batch.verdict is None:
            reason = f" ({batch.error})" if batch.error else ""
            raise ExplainError(
                f"{monitor.name} {night} was not decided: status {batch.status}{reason}"
            )
        evidence, reasons, shift_type = _stored_evidence(session, monitor, batch)
        event = _event(session, batch)
        scores = list(batch.scores)
        performance: dict[str, Any] = {}
        for p in session.scalars(select(NightPerformance).where(NightPerformance.batch_id == batch.id)):
            performance[p.method] = {
                "accuracy": p.accuracy, "low": p.accuracy_low, "high": p.accuracy_high, "n_rows": p.n_rows
            }
            if p.reference_accuracy is not None:
                performance["reference_accuracy"] = p.reference_accuracy
        if performance:
            performance["max_accuracy_drop"] = monitor.gate.max_accuracy_drop

    tests = evidence.get("tests", [])
    act = sorted(
        (t for t in tests if t["in_act_family"]),
        key=lambda t: (not t["decisive"], t["p_value"], -t["effect_size"]),
    )
    decisive_detectors = {t["subject"] for t in act if t["decisive"]}
    cusum = [
        {
            "detector": name,
            "sum": c["sum"],
            "alarm_level": c["threshold"],
            "p0": c["p0"],
            "p1": c["p1"],
            "alarm": bool(c.get("alarm", c["sum"] > c["threshold"])),
        }
        for name, c in sorted(evidence.get("cusum", {}).items())
    ]
    alarmed = {c["detector"] for c in cusum if c["alarm"]}
    detectors = [
        {
            "detector": s.detector,
            "ood_rate": s.ood_rate,
            "expected_rate": expected_flag_rate(s.details["tpr"], s.details["n_calibration"]),
            "n_flagged": s.n_flagged,
            "n_rows": s.n_rows,
            "threshold": s.threshold,
            "moved": s.detector in decisive_detectors | alarmed,
        }
        for s in sorted(scores, key=lambda s: s.detector)
    ]
    column_tests = [
        t
        for t in tests
        if is_column_test(TestResult(t["name"], t["statistic"], t["p_value"], t["effect_size"]))
    ]
    columns = [
        {
            "column": t["subject"],
            "test": t["name"],
            "p_value": t["p_value"],
            "effect_size": t["effect_size"],
            "moved": bool(t["moved"]),
        }
        for t in sorted(
            column_tests, key=lambda t: (not t["moved"], t["p_value"], -t["effect_size"])
        )
    ][:TOP_COLUMNS]
    history = evidence.get("significant_history", [])
    return Explanation(
        monitor=monitor.name,
        date=night.isoformat(),
        verdict=str(batch.verdict),
        shift_type=shift_type,
        event=event,
        reasons=reasons,
        alpha=evidence.get("alpha", monitor.gate.alpha),
        family_size=evidence.get("family_size", len(act)),
        tests=[
            {
                "test": t["name"],
                "subject": t["subject"],
                "p_value": t["p_value"],
                "bar": t["bar"],
                "effect_size": t["effect_size"],
                "min_effect": t["min_effect"],
                "practical": bool(t.get("practical", True)),
                "decisive": bool(t["decisive"]),
            }
            for t in act
        ],
        cusum=cusum,
        persistence={
            "history": history,
            "significant_nights": sum(history),
            "confirm_r": evidence.get("confirm_r", monitor.gate.confirm_r),
        }
        if history
        else {},
        detectors=detectors,
        columns=columns,
        performance=performance,
        kind=evidence.get("kind"),
        statistical=list(evidence.get("statistically_decisive", [])),
        practical=[{"detector": name, **d} for name, d in sorted(evidence.get("practical", {}).items())],
        gradual=evidence.get("gradual", {}),
        input_columns=list(evidence.get("input", {}).get("columns", [])),
    )
