package personagov.lgpd_test

import data.personagov.fixtures_test as f
import data.personagov.lgpd
import rego.v1

test_lgpd_marketing_rules if {
	rules := lgpd.subject_exclusions with input as f.marketing("BR", f.analyst_br)
	f.reasons(rules) == {"lgpd.no_lawful_basis", "lgpd.objection", "lgpd.consent_withdrawn", "lgpd.child"}
}

# Art. 8 §5 revocation; Art. 18 §2 opposition.
test_lgpd_withdrawal_and_objection_cite_articles if {
	w := f.rule_for(lgpd.subject_exclusions, "lgpd.consent_withdrawn") with input as f.marketing("BR", f.analyst_br)
	o := f.rule_for(lgpd.subject_exclusions, "lgpd.objection") with input as f.marketing("BR", f.analyst_br)
	w.article == "LGPD Art. 8 §5"
	o.article == "LGPD Art. 18 §2"
}

test_lgpd_child_age_from_data if {
	r := f.rule_for(lgpd.subject_exclusions, "lgpd.child") with input as f.marketing("BR", f.analyst_br)
	r.condition.any[0].value == data.pgov.digital_consent_age.BR
}

test_lgpd_only_for_brazil_marketing if {
	count(lgpd.subject_exclusions) == 0 with input as f.marketing("SG", f.analyst_sg)
	count(lgpd.subject_exclusions) == 0 with input as f.credit("BR", f.analyst_br)
}
