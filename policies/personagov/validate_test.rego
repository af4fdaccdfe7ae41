package personagov.validate_test

import data.personagov.decision
import data.personagov.fixtures_test as f
import data.personagov.validate
import rego.v1

good := f.marketing("EU-DE", f.analyst_eu)

test_valid_input_has_no_reasons if {
	count(validate.deny) == 0 with input as good
}

test_each_missing_field_named if {
	every field in ["actor", "purpose", "jurisdiction", "as_of", "sources", "subjects", "roles"] {
		reason := concat("", ["input.invalid:", field])
		reason in validate.deny with input as object.remove(good, [field])
	}
}

test_wrong_types_named if {
	"input.invalid:actor.roles" in validate.deny with input as object.union(good, {"actor": object.union(f.analyst_eu, {"roles": "regional_analyst"})})
	"input.invalid:actor.home_region" in validate.deny with input as object.union(good, {"actor": object.union(f.analyst_eu, {"home_region": 7})})
	"input.invalid:sources.crm.columns" in validate.deny with input as object.union(good, {"sources": {"crm": {"columns": []}}})
	"input.invalid:subjects" in validate.deny with input as object.union(good, {"subjects": "nowhere"})
	"input.invalid:roles" in validate.deny with input as object.union(good, {"roles": {"gpc": 1}})
}

test_impossible_dates_denied if {
	every day in ["2026-02-30", "2026-13-01", "2025-02-29", "1899-12-31", "2300-01-01", "2026-1-01", "soon"] {
		"input.invalid:as_of" in validate.deny with input as object.union(good, {"as_of": day})
	}
	every day in ["2024-02-29", "2000-02-29", "2026-12-31", "1900-01-01"] {
		not "input.invalid:as_of" in validate.deny with input as object.union(good, {"as_of": day})
	}
}

test_invalid_input_decision_lists_only_input_reasons if {
	d := decision.decision with input as object.union(good, {"actor": null})
	d.deny == ["input.invalid:actor"]
}

test_overlay_entry_checked if {
	bad := object.union(good, {"jurisdiction_data": {"XX": {"country": "XX", "region": "XX", "regime": "astrology"}}})
	"input.invalid:jurisdiction_data.XX.regime" in validate.deny with input as bad
	age := object.union(good, {"jurisdiction_data": {"XX": {"country": "XX", "region": "XX", "regime": "gdpr", "digital_consent_age": 13.5}}})
	"input.invalid:jurisdiction_data.XX.digital_consent_age" in validate.deny with input as age
}
