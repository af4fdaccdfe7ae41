package personagov.baseline_test

import data.personagov.baseline
import data.personagov.fixtures_test as f
import rego.v1

purposes := ["marketing_segmentation", "credit_risk_segmentation", "kyc_aml"]

action(req, src, col) := a if {
	a := baseline.column_actions[src][col] with input as req
}

# Art. 9(1): special categories dropped for every purpose and jurisdiction.
test_special_category_always_dropped if {
	every p in purposes {
		every j in f.all_jurisdictions {
			action(f.request(j, p, f.compliance), "crm", "religion").action == "drop"
		}
	}
}

# The subject key: pseudonymised as customer_id in every source, purpose's domain.
test_subject_key_pseudonymised_with_purpose_domain if {
	every src in ["crm", "screening", "transactions"] {
		m := action(f.marketing("EU-DE", f.analyst_eu), src, "customer_id")
		m.action == "pseudonymise"
		m.domain == "marketing"
		m.output == "customer_id"
		k := action(f.kyc("EU-DE", f.analyst_eu), src, "customer_id")
		k.domain == "kyc"
	}
}

# Art. 5(1)(c): other direct identifiers dropped outside KYC...
test_direct_identifiers_dropped_outside_kyc if {
	every col in ["email", "phone", "full_name"] {
		action(f.marketing("EU-DE", f.analyst_eu), "crm", col).action == "drop"
		action(f.credit("UK", f.analyst_uk), "crm", col).action == "drop"
	}
}

# ...and pseudonymised in the reversible kyc domain, normalised first, for KYC.
test_kyc_identifiers_to_kyc_domain if {
	e := action(f.kyc("EU-DE", f.analyst_eu), "crm", "email")
	e.action == "pseudonymise"
	e.domain == "kyc"
	e.normaliser == "email"
	action(f.kyc("EU-DE", f.analyst_eu), "crm", "phone").normaliser == "phone"
	action(f.kyc("EU-DE", f.analyst_eu), "crm", "full_name").normaliser == null
}

# Screening only for kyc_aml.
test_screening_only_for_kyc if {
	action(f.marketing("EU-DE", f.analyst_eu), "screening", "pep").action == "drop"
	action(f.marketing("EU-DE", f.analyst_eu), "screening", "pep").reason == "screening_kyc_only"
	action(f.credit("EU-DE", f.analyst_eu), "screening", "pep").action == "drop"
	action(f.kyc("EU-DE", f.analyst_eu), "screening", "pep").action == "keep"
}

# Art. 5(1)(b): consent columns and outcomes only where the purpose lists them.
test_purpose_limitation_by_classification if {
	action(f.marketing("EU-DE", f.analyst_eu), "crm", "marketing_consent").reason == "purpose_limitation"
	action(f.kyc("EU-DE", f.analyst_eu), "crm", "converted").action == "drop"
	action(f.marketing("EU-DE", f.analyst_eu), "crm", "converted").action == "keep"
	action(f.credit("EU-DE", f.analyst_eu), "crm", "precise_geolocation").action == "drop"
}

test_unknown_purpose_drops_everything_but_the_key if {
	req := f.request("EU-DE", "astrology", f.analyst_eu)
	action(req, "crm", "annual_income").action == "drop"
	action(req, "transactions", "amount").action == "drop"
}

# Quasi-identifiers generalised; a coarse one kept; an unknown one dropped.
test_quasi_identifiers_generalised if {
	req := f.marketing("EU-DE", f.analyst_eu)
	dob := action(req, "crm", "date_of_birth")
	dob.action == "generalise"
	dob.method == "age_band"
	dob.output == "age_band"
	action(req, "crm", "postcode").method == "postcode_district"
	action(req, "crm", "annual_income").method == "income_band"
	action(req, "crm", "country").action == "keep"
	action(req, "crm", "birth_town").action == "drop"
}

test_every_declared_column_has_an_action if {
	req := f.kyc("SG", f.compliance)
	every name, src in f.sources {
		every col, _ in src.columns {
			action(req, name, col).action
		}
	}
}

# Art. 17(1): erasure/deletion excludes for marketing and credit...
test_erasure_excludes_outside_legal_obligation if {
	"erasure.requested" in f.reasons(baseline.subject_exclusions) with input as f.marketing("EU-DE", f.analyst_eu)
	"erasure.requested" in f.reasons(baseline.subject_exclusions) with input as f.credit("US-CA", f.analyst_us)
}

# ...but not for KYC/AML (Art. 17(3)(b)): the request is held, explicitly.
test_erasure_legal_hold_for_kyc if {
	not "erasure.requested" in f.reasons(baseline.subject_exclusions) with input as f.kyc("EU-DE", f.analyst_eu)
	"erasure.legal_hold:aml_record_keeping" in baseline.obligations with input as f.kyc("EU-DE", f.analyst_eu)
}

# Art. 5(1)(e): retention cut-off per purpose on each source's record date.
test_retention_by_purpose if {
	m := baseline.row_rules.crm with input as f.marketing("EU-DE", f.analyst_eu)
	k := baseline.row_rules.crm with input as f.kyc("EU-DE", f.analyst_eu)
	some rm in m
	rm.condition == {"field": "last_activity_date", "op": "lt", "value": "2024-11-23"}
	some rk in k
	rk.condition.value == "2021-11-24"
}

test_retention_spares_live_records if {
	live := {"field": "status", "op": "in", "value": ["active"]}
	loans := {"loans": {
		"columns": {"loan_id": "technical", "customer_id": "direct_identifier", "status": "financial", "originated_at": "financial"},
		"subject_column": "customer_id",
		"record_date_column": "originated_at",
		"record_date_type": "date",
		"open_condition": live,
	}}
	rules := baseline.row_rules.loans with input as object.union(f.marketing("EU-DE", f.analyst_eu), {"sources": loans})
	some r in rules
	r.condition == {"all": [
		{"field": "originated_at", "op": "lt", "value": "2024-11-23"},
		{"not": live},
	]}
}

test_retention_on_datetime_and_dateless_sources if {
	t := baseline.row_rules.transactions with input as f.marketing("EU-DE", f.analyst_eu)
	some r in t
	r.condition.value == "2024-11-23T00:00:00"
	count(baseline.row_rules.screening) == 0 with input as f.marketing("EU-DE", f.analyst_eu)
}
