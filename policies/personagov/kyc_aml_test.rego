package personagov.kyc_aml_test

import data.personagov.decision
import data.personagov.fixtures_test as f
import data.personagov.kyc_aml
import rego.v1

# The ruleset is passed through opaque for kyc_aml.
test_ruleset_in_kyc_decision if {
	d := decision.decision with input as f.kyc("EU-DE", f.compliance) with data.personagov.kyc_ruleset.ruleset as f.stub_ruleset
	d.allow
	d.kyc_ruleset == f.stub_ruleset
	d.subject_domain == "kyc"
}

# No (object) ruleset: the KYC refresh is denied.
test_missing_ruleset_denies if {
	d := decision.decision with input as f.kyc("EU-DE", f.compliance) with data.personagov.kyc_ruleset.ruleset as null
	not d.allow
	"kyc.ruleset_undefined" in d.deny
}

test_ruleset_not_sent_for_marketing if {
	d := decision.decision with input as f.marketing("EU-DE", f.analyst_eu)
	d.kyc_ruleset == null
}

# Legal obligation: no marketing opt-out, objection or consent rule removes a KYC subject.
test_marketing_opt_outs_do_not_exclude_from_kyc if {
	every j in f.all_jurisdictions {
		d := decision.decision with input as f.kyc(j, f.compliance) with data.personagov.kyc_ruleset.ruleset as f.stub_ruleset
		count(d.subject_exclusions) == 0
	}
}

test_kyc_obligations if {
	obs := kyc_aml.obligations with input as f.kyc("UK", f.compliance)
	"lawful_basis:legal_obligation" in obs
	"reidentification:kyc_operations_only_audited" in obs
}
