package personagov.gdpr_test

import data.personagov.fixtures_test as f
import data.personagov.gdpr
import rego.v1

# Art. 6(1)(a),(f): no consent and no legitimate interest -> excluded.
test_marketing_requires_consent_or_legitimate_interest if {
	r := f.rule_for(gdpr.subject_exclusions, "gdpr.no_lawful_basis") with input as f.marketing("EU-DE", f.analyst_eu)
	r.article == "GDPR Art. 6(1)(a),(f)"
	r.condition.not.any[1] == {"field": "lawful_basis_marketing", "op": "eq", "value": "legitimate_interest"}
}

# Art. 21(2)-(3): objection (flag or opt-out request) excludes.
test_objection_excludes if {
	r := f.rule_for(gdpr.subject_exclusions, "gdpr.objection") with input as f.marketing("EU-FR", f.analyst_eu)
	{"field": "objection_direct_marketing", "op": "eq", "value": true} in r.condition.any
	{"field": "opt_out_requested", "op": "eq", "value": true} in r.condition.any
}

# Art. 7(3): withdrawn consent excludes.
test_withdrawn_consent_excludes if {
	r := f.rule_for(gdpr.subject_exclusions, "gdpr.consent_withdrawn") with input as f.marketing("EU-ES", f.analyst_eu)
	r.condition == {"field": "consent_withdrawn", "op": "eq", "value": true}
}

# Art. 8(1): the member state's digital-consent age from data.json (DE 16, FR 15, ES 14).
test_child_age_is_per_country if {
	de := f.rule_for(gdpr.subject_exclusions, "gdpr.child") with input as f.marketing("EU-DE", f.analyst_eu)
	fr := f.rule_for(gdpr.subject_exclusions, "gdpr.child") with input as f.marketing("EU-FR", f.analyst_eu)
	es := f.rule_for(gdpr.subject_exclusions, "gdpr.child") with input as f.marketing("EU-ES", f.analyst_eu)
	de.condition.any[0].value == 16
	fr.condition.any[0].value == 15
	es.condition.any[0].value == 14
	{"field": "age_years", "op": "is_null"} in de.condition.any
}

test_marketing_rules_do_not_apply_to_credit_or_kyc if {
	count(gdpr.subject_exclusions) == 0 with input as f.credit("EU-DE", f.analyst_eu)
	count(gdpr.subject_exclusions) == 0 with input as f.kyc("EU-DE", f.analyst_eu)
}

test_gdpr_does_not_apply_outside_the_eu if {
	count(gdpr.subject_exclusions) == 0 with input as f.marketing("UK", f.analyst_uk)
	count(gdpr.subject_exclusions) == 0 with input as f.marketing("US-CA", f.analyst_us)
}
