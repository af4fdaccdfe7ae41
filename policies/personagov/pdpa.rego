# Singapore Personal Data Protection Act 2012: marketing rules for SG.
package personagov.pdpa

import data.personagov.lib
import rego.v1

applies if lib.regime == "pdpa"

# s.13: consent is required; the legitimate-interests exception does not cover marketing.
subject_exclusions contains lib.rule("pdpa.no_consent", "PDPA s.13-14", lib.no_consent) if {
	applies
	lib.marketing
}

# s.16: consent may be withdrawn on reasonable notice.
subject_exclusions contains lib.rule("pdpa.consent_withdrawn", "PDPA s.16", lib.is_true("consent_withdrawn")) if {
	applies
	lib.marketing
}

# PDPC Advisory Guidelines on Children's Personal Data: under 13s cannot give valid consent.
subject_exclusions contains lib.rule("pdpa.child", "PDPA s.14; PDPC Advisory Guidelines (children)", lib.age_under(lib.consent_age)) if {
	applies
	lib.marketing
}

# Part IX (s.43): no specified message to a number on the Do Not Call register. Marketing
# frames never carry phone numbers in clear (direct identifiers are dropped), so the rule
# becomes (a) an obligation on activation to suppress the phone channel for flagged
# customers and (b) a per-customer nulling of any phone-derived column that survives.
obligations contains "suppress_channel:phone" if {
	applies
	lib.marketing
}

nullings contains {
	"reason": "pdpa.do_not_call",
	"article": "PDPA Part IX s.43",
	"condition": lib.is_true("do_not_call"),
	"columns": data.pgov.phone_columns,
} if {
	applies
	lib.marketing
}
