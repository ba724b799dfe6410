"""The schema mirrors nanotron main field for field (drift test); strict loading names problems."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest

from ai_filters.nanotron import NANOTRON_COMMIT, NanotronConfigError, load_config, schema
from tests.nanotron.helpers import shipped_dict

# field names of nanotron's config dataclasses, read from its source at NANOTRON_COMMIT
RECORDED = json.loads((Path(__file__).parent / "data" / "nanotron_fields.json").read_text())
# nanotron dataclasses the schema does not mirror: sections no config of ours can contain
NOT_MIRRORED = {
    "BenchArgs": "benchmark runs, not part of a training config",
    "PretrainDatasetsArgs": "Hub datasets tokenized on the fly; we train on .ds folders",
    "SFTDatasetsArgs": "fine-tuning data",
    "MoEConfig": "mixture of experts; our models are dense Llamas",
    "Qwen2Config": "another architecture; ModelArgs.model_config is a LlamaConfig here",
    "Starcoder2Config": "another architecture",
}


def nanotron_name(cls: type) -> str:
    """nanotron's name of a schema class (its whole-file class is plain ``Config``)."""
    return "Config" if cls.__name__ == "NanotronConfig" else cls.__name__


def schema_classes() -> dict[str, type]:
    """Every dataclass defined in ``ai_filters.nanotron.schema``, by nanotron's name."""
    return {
        nanotron_name(cls): cls
        for cls in vars(schema).values()
        if isinstance(cls, type) and is_dataclass(cls) and cls.__module__ == schema.__name__
    }


def field_drift(cls: type, recorded: list[str]) -> list[str]:
    """One line per difference between ``cls``'s fields and nanotron's ``recorded`` ones."""
    ours = [spec.name for spec in fields(cls)]
    problems = [
        f"{cls.__name__}.{name}: nanotron's {nanotron_name(cls)} has this field, the schema not"
        for name in recorded
        if name not in ours
    ]
    problems += [
        f"{cls.__name__}.{name}: not a field of nanotron's {nanotron_name(cls)}"
        for name in ours
        if name not in recorded
    ]
    if not problems and ours != recorded:
        problems.append(f"{cls.__name__}: fields in another order than nanotron's: {recorded}")
    return problems


def test_recorded_fields_are_of_the_pinned_commit():
    assert RECORDED["commit"] == NANOTRON_COMMIT


def test_schema_has_exactly_nanotrons_fields():
    problems = []
    for name, cls in schema_classes().items():
        if name not in RECORDED["classes"]:
            problems.append(f"{cls.__name__}: nanotron has no dataclass {name}")
            continue
        problems += field_drift(cls, RECORDED["classes"][name]["fields"])
    assert not problems, "the schema drifted from nanotron:\n" + "\n".join(problems)


def test_every_nanotron_dataclass_is_mirrored_or_left_out_on_purpose():
    assert set(schema_classes()).isdisjoint(NOT_MIRRORED)
    assert set(RECORDED["classes"]) == set(schema_classes()) | set(NOT_MIRRORED)


def test_drift_is_reported_by_class_and_field():
    @dataclass
    class LRSchedulerArgs:
        learning_rate: float
        lr_warmup_step: int = 0

    recorded = RECORDED["classes"]["LRSchedulerArgs"]["fields"]
    problems = field_drift(LRSchedulerArgs, recorded)
    assert "LRSchedulerArgs.lr_warmup_step: not a field of nanotron's LRSchedulerArgs" in problems
    assert (
        "LRSchedulerArgs.min_decay_lr: nanotron's LRSchedulerArgs has this field, the schema not"
        in problems
    )
    assert len(problems) == len(recorded)  # 6 missing + 1 extra


def test_unknown_key_is_named_with_a_suggestion():
    data = shipped_dict()
    data["optimizer"]["learning_rate_scheduler"]["lr_decay_stylee"] = "linear"
    with pytest.raises(NanotronConfigError) as error:
        load_config(data)
    assert error.value.problems == [
        "optimizer.learning_rate_scheduler.lr_decay_stylee is not a field; "
        "did you mean lr_decay_style?"
    ]


def test_wrong_types_and_missing_keys_are_all_reported():
    data = shipped_dict()
    data["optimizer"]["learning_rate_scheduler"]["learning_rate"] = "4e-4"
    data["tokens"]["train_steps"] = True
    del data["parallelism"]["dp"]
    data["parallelism"]["tp_mode"] = "SCATTER"
    with pytest.raises(NanotronConfigError) as error:
        load_config(data)
    text = "\n".join(error.value.problems)
    assert len(error.value.problems) == 4
    assert "learning_rate: expected float, got '4e-4' (YAML reads 4e-4 as text" in text
    assert "tokens.train_steps: expected int, got True" in text
    assert "parallelism.dp is required" in text
    assert "parallelism.tp_mode: 'SCATTER' is not allowed; use one of 'ALL_REDUCE'" in text
