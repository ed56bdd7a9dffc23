from __future__ import annotations

import pytest

from matchkit.errors import SchemaError
from matchkit.schema import BUILTIN_SOURCES, load_schema

SPEC_COLUMNS = {
    "claims": ["claim_id", "taxpayer_id", "taxpayer_id_type", "taxpayer_name", "deduction", "tax_year",
               "period_start", "period_end", "subject_id", "subject_id_type", "subject_name", "subject_birth_date",
               "subject_relation", "share", "monthly_amount", "annual_amount", "education_stage", "only_child"],
    "education": ["student_id", "student_id_type", "student_name", "birth_date", "education_stage", "enrolled_from",
                  "enrolled_to"],
    "household": ["parent_id", "parent_name", "child_id", "child_name"],
    "civil_affairs": ["event", "person_id", "person_name", "partner_id", "partner_name", "event_date"],
    "only_child": ["person_id", "person_name"],
    "medical_insurance": ["patient_id", "patient_name", "year", "total_cost", "out_of_pocket"],
}
SPEC_ALIASES = {"claims": {"申报编号": "claim_id", "被扣除人证件号码": "subject_id", "分配比例": "share"},
                "education": {"入学年月": "enrolled_from", "离校年月": "enrolled_to"},
                "household": {"父母证件号码": "parent_id", "子女姓名": "child_name"},
                "civil_affairs": {"事件类型": "event", "登记日期": "event_date"},
                "only_child": {"证件号码": "person_id"},
                "medical_insurance": {"个人负担金额": "out_of_pocket", "年度": "year"}}


@pytest.mark.parametrize("source", BUILTIN_SOURCES)
def test_builtin_schemas_have_spec_columns_and_aliases(source):
    schema = load_schema(source)
    assert [c.name for c in schema.columns] == SPEC_COLUMNS[source]
    headers = schema.header_map()
    for alias, canonical in SPEC_ALIASES[source].items():
        assert headers[alias] == canonical
    assert schema.purpose == "iit-special-deduction"
    assert len(schema.digest) == 64


def test_unknown_source_name():
    with pytest.raises(SchemaError, match="unknown source 'educaton'"):
        load_schema("educaton")


def test_all_problems_reported_at_once(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[source]
name = "x"
[entities.person]
id = "pid"
name = "nm"
[[columns]]
name = "pid"
type = "identifier"
[[columns]]
name = "stage"
type = "code"
[[columns]]
name = "nm"
type = "name"
colour = "red"
""",
        encoding="utf-8",
    )
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    problems = info.value.problems
    assert any(p.startswith("source.purpose") for p in problems)
    assert any("columns[0].type: unknown type 'identifier'" in p for p in problems)
    assert any(p.startswith("columns[1].vocabulary") for p in problems)
    assert any("columns[2]: unknown key(s) ['colour']" in p for p in problems)
    assert any("entities.person.id: column 'pid' has type 'identifier'" in p for p in problems)
    assert str(path) in str(info.value)


def test_invalid_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[source\nname=", encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid TOML"):
        load_schema(path)
    with pytest.raises(SchemaError, match="not found"):
        load_schema(tmp_path / "missing.toml")
