# LGPD (Lei 13.709/2018): direct-marketing rules for Brazil.
package personagov.lgpd

import data.personagov.lib
import rego.v1

applies if lib.regime == "lgpd"

# Art. 7 I (consent) and IX (legitimate interest, limited by Art. 10).
subject_exclusions contains lib.rule("lgpd.no_lawful_basis", "LGPD Art. 7 I, IX; Art. 10", lib.no_marketing_basis) if {
	applies
	lib.marketing
}

# Art. 18 §2: the data subject may oppose processing based on a basis other than consent.
subject_exclusions contains lib.rule("lgpd.objection", "LGPD Art. 18 §2", lib.objected) if {
	applies
	lib.marketing
}

# Art. 8 §5: consent may be revoked at any time.
subject_exclusions contains lib.rule("lgpd.consent_withdrawn", "LGPD Art. 8 §5", lib.is_true("consent_withdrawn")) if {
	applies
	lib.marketing
}

# Art. 14: children's data only with specific parental consent and in their best interest;
# data.json sets 13 for BR, more protective than the ECA's 12 (documented choice).
subject_exclusions contains lib.rule("lgpd.child", "LGPD Art. 14 §1", lib.age_under(lib.consent_age)) if {
	applies
	lib.marketing
}
