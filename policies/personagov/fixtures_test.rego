# Shared fixtures for the bundle's tests (a *_test.rego file: never served or evaluated in a
# decision). Sources mirror engine/defaults/pgov.toml, trimmed to one column per case.
package personagov.fixtures_test

import rego.v1

actor(id, roles, home, jurisdictions) := {"id": id, "roles": roles, "home_region": home, "jurisdictions": jurisdictions}

analyst_eu := actor("analyst-eu", ["regional_analyst"], "EU", ["EU-DE", "EU-FR", "EU-ES", "EU-IT", "EU-NL"])

analyst_uk := actor("analyst-uk", ["regional_analyst"], "UK", ["UK"])

analyst_us := actor("analyst-us", ["regional_analyst"], "US", ["US-CA", "US-NY"])

analyst_sg := actor("analyst-sg", ["regional_analyst"], "SG", ["SG"])

analyst_br := actor("analyst-br", ["regional_analyst"], "BR", ["BR"])

all_jurisdictions := ["EU-DE", "EU-FR", "EU-ES", "EU-IT", "EU-NL", "UK", "US-CA", "US-NY", "SG", "BR"]

compliance := actor("compliance-lead", ["compliance_officer"], "EU", all_jurisdictions)

kyc_ops := actor("kyc-ops", ["kyc_operations"], "EU", all_jurisdictions)

engineer := actor("data-engineer", ["data_engineer"], "EU", [])

sources := {
	"crm": {
		"columns": {
			"customer_id": "direct_identifier",
			"jurisdiction": "technical",
			"email": "direct_identifier",
			"phone": "direct_identifier",
			"full_name": "direct_identifier",
			"date_of_birth": "quasi_identifier",
			"postcode": "quasi_identifier",
			"country": "quasi_identifier",
			"birth_town": "quasi_identifier",
			"precise_geolocation": "sensitive_pi",
			"annual_income": "financial",
			"customer_type": "financial",
			"last_activity_date": "behavioural",
			"marketing_consent": "consent",
			"religion": "special_category",
			"converted": "outcome",
		},
		"subject_column": "customer_id",
		"record_date_column": "last_activity_date",
		"record_date_type": "date",
	},
	"screening": {
		"columns": {"customer_id": "direct_identifier", "jurisdiction": "technical", "pep": "screening"},
		"subject_column": "customer_id",
		"record_date_column": null,
		"record_date_type": null,
	},
	"transactions": {
		"columns": {"txn_id": "technical", "customer_id": "direct_identifier", "jurisdiction": "technical", "ts": "behavioural", "amount": "financial"},
		"subject_column": "customer_id",
		"record_date_column": "ts",
		"record_date_type": "datetime",
	},
}

# Every privacy role the bundle reads, mapped as the sample declares it (pgov.toml), plus
# the facts engine.enforce derives (requests, age).
roles := {
	"date_of_birth": "date_of_birth",
	"country": "country",
	"lawful_basis_marketing": "lawful_basis_marketing",
	"marketing_consent": "marketing_consent",
	"marketing_consent_at": "marketing_consent_at",
	"consent_withdrawn": "consent_withdrawn",
	"objection_direct_marketing": "objection_direct_marketing",
	"do_not_sell_share": "ccpa_do_not_sell_share",
	"gpc": "gpc_signal",
	"limit_sensitive_pi": "limit_sensitive_pi",
	"do_not_call": "do_not_call",
	"erasure_requested": "erasure_requested",
	"deletion_requested": "deletion_requested",
	"opt_out_requested": "opt_out_requested",
}

request(jurisdiction, purpose, who) := {
	"actor": who,
	"jurisdiction": jurisdiction,
	"purpose": purpose,
	"as_of": "2026-11-23",
	"sources": sources,
	"subjects": "crm",
	"roles": roles,
}

marketing(jurisdiction, who) := request(jurisdiction, "marketing_segmentation", who)

credit(jurisdiction, who) := request(jurisdiction, "credit_risk_segmentation", who)

kyc(jurisdiction, who) := request(jurisdiction, "kyc_aml", who)

reasons(rules) := {r.reason | some r in rules}

rule_for(rules, reason) := r if {
	some r in rules
	r.reason == reason
}

stub_ruleset := {"version": "test", "factors": []}

# object.union merges nested objects: replace the role map wholesale instead.
with_roles(req, r) := object.union(object.remove(req, ["roles"]), {"roles": r})
