# UK GDPR and the Data Protection Act 2018: direct-marketing rules for the UK.
# Same structure as the EU GDPR; the digital-consent age is 13 (DPA 2018 s.9).
package personagov.uk_gdpr

import data.personagov.lib
import rego.v1

applies if lib.regime == "uk_gdpr"

# Art. 6(1)(a) and (f): marketing needs consent or a legitimate interest.
subject_exclusions contains lib.rule("uk_gdpr.no_lawful_basis", "UK GDPR Art. 6(1)(a),(f)", lib.no_marketing_basis) if {
	applies
	lib.marketing
}

# Art. 21(2)-(3): an objection to direct marketing is absolute.
subject_exclusions contains lib.rule("uk_gdpr.objection", "UK GDPR Art. 21(2)-(3)", lib.objected) if {
	applies
	lib.marketing
}

# Art. 7(3): withdrawing consent ends processing based on it.
subject_exclusions contains lib.rule("uk_gdpr.consent_withdrawn", "UK GDPR Art. 7(3)", lib.is_true("consent_withdrawn")) if {
	applies
	lib.marketing
}

# Art. 8(1): children under 13 cannot consent to information society services.
subject_exclusions contains lib.rule("uk_gdpr.child", "UK GDPR Art. 8(1); DPA 2018 s.9", lib.age_under(lib.consent_age)) if {
	applies
	lib.marketing
}
