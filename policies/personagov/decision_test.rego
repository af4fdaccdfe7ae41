package personagov.decision_test

import data.personagov.decision
import data.personagov.fixtures_test as f
import rego.v1

test_allowed_marketing_decision_shape if {
	d := decision.decision with input as f.marketing("EU-DE", f.analyst_eu)
	d.allow
	d.deny == []
	d.regime == "gdpr"
	d.subject_domain == "marketing"
	d.k_anonymity_min == 10
	d.policy_revision == data.pgov.revision
	"k_anonymity_min:10" in d.obligations
	count(d.sources) == 3
}

test_every_source_column_planned if {
	d := decision.decision with input as f.marketing("US-CA", f.analyst_us)
	every name, src in f.sources {
		every col, _ in src.columns {
			d.sources[name].columns[col].action
		}
	}
}

# CCPA nulling is expanded to the surviving sensitive_pi columns of each source.
test_nulling_lists_surviving_columns_per_source if {
	d := decision.decision with input as f.marketing("US-CA", f.analyst_us)
	d.sources.crm.nullings[0].columns == ["precise_geolocation"]
	d.sources.crm.nullings[0].reason == "ccpa.limit_sensitive_pi"
	d.sources.transactions.nullings == []
}

test_denied_decision_lists_reasons if {
	d := decision.decision with input as f.marketing("UK", f.analyst_eu)
	not d.allow
	d.deny == ["access.jurisdiction_not_assigned"]
}

test_malformed_input_denied if {
	d := decision.decision with input as {"actor": f.analyst_eu, "jurisdiction": "EU-DE", "purpose": "marketing_segmentation", "as_of": "soon"}
	not d.allow
	"input.no_sources" in d.deny
	"input.no_subjects_source" in d.deny
	"input.as_of_invalid" in d.deny
}

test_regime_per_jurisdiction if {
	ny := decision.decision with input as f.marketing("US-NY", f.analyst_us)
	sg := decision.decision with input as f.marketing("SG", f.analyst_sg)
	br := decision.decision with input as f.marketing("BR", f.analyst_br)
	ny.regime == "us_baseline"
	sg.regime == "pdpa"
	br.regime == "lgpd"
}
