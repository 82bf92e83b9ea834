"""JSON field agreement and named fields (pure functions)."""

from pytest_llmswap.drift.structured import MISSING, field_agreement, get_path, leaves, named_field_mismatches


def test_reordered_fields_agree_fully_and_one_changed_value_costs_its_share():
    golden = {"category": "bug", "priority": "high", "customer": {"id": 7, "tier": "gold"}}
    reordered = {"customer": {"tier": "gold", "id": 7}, "priority": "high", "category": "bug"}
    assert field_agreement(golden, reordered) == 1.0
    changed = dict(reordered, priority="low")
    assert field_agreement(golden, changed) == 3 / 4  # four leaves, one differs


def test_missing_and_extra_fields_count_against_agreement():
    assert field_agreement({"a": 1, "b": 2}, {"a": 1, "c": 3}) == 1 / 3
    assert leaves({"items": [{"sku": "x"}, {"sku": "y"}], "empty": []}) == {
        "items[0].sku": "x", "items[1].sku": "y", "empty": []}


def test_named_fields_by_dotted_path():
    golden = {"customer": {"id": 7}, "items": [{"sku": "x"}]}
    assert get_path(golden, "items[0].sku") == "x" and get_path(golden, "nope.x") is MISSING
    assert named_field_mismatches([golden], {"customer": {"id": 8}, "items": [{"sku": "x"}]},
                                  ("customer.id", "items[0].sku")) == ["field 'customer.id': golden 7, candidate 8"]
    assert named_field_mismatches([golden], {}, ("customer.id",)) == [
        "field 'customer.id': golden 7, candidate <missing>"]


def test_named_fields_accept_any_value_the_incumbent_gave():
    samples = [{"category": "billing"}, {"category": "account"}, {"category": "billing"}]
    assert named_field_mismatches(samples, {"category": "account"}, ("category",)) == []
    assert named_field_mismatches(samples, {"category": "bug"}, ("category",)) == [
        "field 'category': golden \"billing\" or \"account\", candidate \"bug\""]


def test_structured_goldens_under_a_semantic_tolerance_get_one_warning() -> None:
    from pytest_llmswap.drift.structured import looks_structured, semantic_on_structured

    assert looks_structured('{"category": "bug"}') and looks_structured("category: bug\nurgency: high")
    assert not looks_structured("The customer was billed twice.") and not looks_structured("Note: one line")
    line = semantic_on_structured("t.py::test_triage", ['{"category": "bug"}', '{"category": "billing"}', "prose"])
    assert line is not None and line.startswith("t.py::test_triage: ") and "tolerance={'fields'" in line
    assert "\n" not in line
    assert semantic_on_structured("t.py::test_summary", ["A summary.", "Another one.", '{"a": 1}']) is None


def test_a_semantic_tolerance_on_json_goldens_warns_once_as_the_run_starts(suite) -> None:
    # echo answers with its prompt: JSON goldens, judged by a semantic tolerance alone.
    contract = ("prompt='{\"category\": \"{{ word }}\"}', output='json', "
                "cases=[{'id': 'a', 'word': 'bug'}, {'id': 'b', 'word': 'billing'}], ")
    pytester = suite(contract + "tolerance={'semantic': 0.9}", body='assert output.json["category"]')
    pytester.runpytest("--incumbent-model", "echo", "--llmswap-record", "new").assert_outcomes(passed=2)
    result = pytester.runpytest("--candidate-model", "echo")
    lines = [line for line in result.stdout.lines if "goldens are structured" in line]
    assert len(lines) == 1 and lines[0].startswith("llmswap WARNING test_suite.py::test_contract: ")
    first_result = next(i for i, line in enumerate(result.stdout.lines) if line.startswith("test_suite.py"))
    assert result.stdout.lines.index(lines[0]) < first_result  # at the start, before the tests run
    # Judged by fields as well: nothing to warn about.
    suite(contract + "tolerance={'semantic': 0.9, 'fields': ['category']}", body='assert output.json["category"]')
    assert "goldens are structured" not in pytester.runpytest("--candidate-model", "echo").stdout.str()
