package personagov.uk_gdpr_test

import data.personagov.fixtures_test as f
import data.personagov.uk_gdpr
import rego.v1

test_uk_marketing_rules if {
	rules := uk_gdpr.subject_exclusions with input as f.marketing("UK", f.analyst_uk)
	f.reasons(rules) == {"uk_gdpr.no_lawful_basis", "uk_gdpr.objection", "uk_gdpr.consent_withdrawn", "uk_gdpr.child"}
}

# DPA 2018 s.9: the UK digital-consent age is 13.
test_uk_child_age_is_13 if {
	r := f.rule_for(uk_gdpr.subject_exclusions, "uk_gdpr.child") with input as f.marketing("UK", f.analyst_uk)
	r.condition.any[0].value == 13
	contains(r.article, "DPA 2018 s.9")
}

test_uk_objection_cites_art_21 if {
	r := f.rule_for(uk_gdpr.subject_exclusions, "uk_gdpr.objection") with input as f.marketing("UK", f.analyst_uk)
	r.article == "UK GDPR Art. 21(2)-(3)"
}

test_uk_rules_only_for_uk_marketing if {
	count(uk_gdpr.subject_exclusions) == 0 with input as f.marketing("EU-DE", f.analyst_eu)
	count(uk_gdpr.subject_exclusions) == 0 with input as f.kyc("UK", f.analyst_uk)
}
