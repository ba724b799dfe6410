"""How well a distilled model selects like its teacher: top-fraction Jaccard and Spearman."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ai_filters.selection.report import spearman
from ai_filters.selection.thresholds import top_fraction_threshold


def agreement(
    domains: Sequence[str],
    teacher: Sequence[float],
    student: Sequence[float],
    fraction: float,
) -> dict:
    """How well ``student`` scores select like ``teacher`` scores, per domain and overall.

    Per domain: the top ``fraction`` by each (the selection's rule: ``k = ceil(fraction * n)``,
    ties kept), their Jaccard, the Jaccard two independent random selections of that size
    would have on average (``chance_jaccard``), and the Spearman correlation of the scores.
    Overall: the Jaccard of the union of the domains' selections, and the mean Spearman.
    """
    domain_array = np.array(domains)
    teacher_array, student_array = np.asarray(teacher, float), np.asarray(student, float)
    per_domain, kept = {}, {"teacher": 0, "student": 0, "both": 0}
    for domain in sorted(set(domains)):
        members = domain_array == domain
        top_teacher = _top(teacher_array[members], fraction)
        top_student = _top(student_array[members], fraction)
        both = int((top_teacher & top_student).sum())
        size = int(members.sum())
        per_domain[domain] = {
            "documents": size,
            "selected_teacher": int(top_teacher.sum()),
            "selected_student": int(top_student.sum()),
            "selected_both": both,
            "jaccard": both / int((top_teacher | top_student).sum()),
            "chance_jaccard": _chance_jaccard(size, int(top_teacher.sum())),
            "spearman": _finite(spearman(teacher_array[members], student_array[members])),
        }
        kept["teacher"] += int(top_teacher.sum())
        kept["student"] += int(top_student.sum())
        kept["both"] += both
    correlations = [row["spearman"] for row in per_domain.values() if row["spearman"] is not None]
    union = kept["teacher"] + kept["student"] - kept["both"]
    return {
        "fraction": fraction,
        "documents": len(domains),
        "jaccard": kept["both"] / union if union else None,
        "mean_spearman": float(np.mean(correlations)) if correlations else None,
        "domains": per_domain,
    }


def _top(scores: np.ndarray, fraction: float) -> np.ndarray:
    threshold = top_fraction_threshold(scores, np.zeros(len(scores)), fraction).threshold
    return scores >= threshold


def _chance_jaccard(documents: int, selected: int) -> float:
    """Expected |A & B| / |A | B| of two independent uniform draws of ``selected`` of
    ``documents`` items, approximated by the ratio of expectations ``p / (2 - p)``, ``p`` the
    selected share (0.111 at 20 %)."""
    share = selected / documents
    return share / (2 - share)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value
