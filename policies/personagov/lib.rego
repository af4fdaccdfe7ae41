# Shared vocabulary for every regulation module: what the request is, which regime governs
# the data, and the condition constructors rules use. Conditions are data: Rego never sees
# a row; engine.conditions compiles them to Polars.
package personagov.lib

import rego.v1

default jurisdiction := {}

jurisdiction := data.pgov.jurisdictions[input.jurisdiction]

default regime := "unknown"

regime := jurisdiction.regime

default region := "unknown"

region := jurisdiction.region

# The country whose digital-consent age applies; the jurisdiction's own country unless the
# request names one.
default country := ""

country := input.country if is_string(input.country)

country := jurisdiction.country if not is_string(input.country)

# A country missing from data.json gets the strictest GDPR age (Art. 8(1)): fail closed.
default consent_age := 16

consent_age := data.pgov.digital_consent_age[country]

default purpose_spec := {}

purpose_spec := data.pgov.purposes[input.purpose]

default allowed_classifications := []

allowed_classifications := purpose_spec.classifications

# Only the kyc_aml purpose uses the reversible domain; anything else gets the irreversible one.
default subject_domain := "marketing"

subject_domain := "kyc" if input.purpose == "kyc_aml"

# Checked before any time builtin sees it (regorus raises on an unparsable date).
valid_as_of if {
	is_string(input.as_of)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, input.as_of)
}

marketing if input.purpose == "marketing_segmentation"

kyc if input.purpose == "kyc_aml"

# GDPR Art. 6(1)(c): processing necessary for a legal obligation (AML/CFT record keeping).
legal_obligation if purpose_spec.lawful_basis == "legal_obligation"

is_true(field) := {"field": field, "op": "eq", "value": true}

eq(field, value) := {"field": field, "op": "eq", "value": value}

# Missing means no: an unknown age counts as under age.
age_under(years) := {"any": [
	{"field": "age_years", "op": "lt", "value": years},
	{"field": "age_years", "op": "is_null"},
]}

# Neither recorded consent nor legitimate interest: no lawful basis for direct marketing.
no_marketing_basis := {"not": {"any": [
	{"all": [eq("lawful_basis_marketing", "consent"), is_true("marketing_consent")]},
	eq("lawful_basis_marketing", "legitimate_interest"),
]}}

# An objection (the flag or an opt-out request from privacy_requests).
objected := {"any": [is_true("objection_direct_marketing"), is_true("opt_out_requested")]}

no_consent := {"not": is_true("marketing_consent")}

rule(reason, article, condition) := {"reason": reason, "article": article, "condition": condition}
