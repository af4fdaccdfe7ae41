# GDPR (Regulation (EU) 2016/679): direct-marketing rules for EU jurisdictions.
# Purpose limitation, special categories, identifiers, erasure and retention, common to every
# regime, live in personagov.baseline.
package personagov.gdpr

import data.personagov.lib
import rego.v1

applies if lib.regime == "gdpr"

# Art. 6(1)(a) and (f): marketing needs consent or a legitimate interest.
subject_exclusions contains lib.rule("gdpr.no_lawful_basis", "GDPR Art. 6(1)(a),(f)", lib.no_marketing_basis) if {
	applies
	lib.marketing
}

# Art. 21(2)-(3): an objection to direct marketing is absolute.
subject_exclusions contains lib.rule("gdpr.objection", "GDPR Art. 21(2)-(3)", lib.objected) if {
	applies
	lib.marketing
}

# Art. 7(3): withdrawing consent ends processing based on it.
subject_exclusions contains lib.rule("gdpr.consent_withdrawn", "GDPR Art. 7(3)", lib.is_true("consent_withdrawn")) if {
	applies
	lib.marketing
}

# Art. 8(1): children below the member state's digital-consent age (13-16) cannot consent.
subject_exclusions contains lib.rule("gdpr.child", "GDPR Art. 8(1)", lib.age_under(lib.consent_age)) if {
	applies
	lib.marketing
}
