package personagov.pdpa_test

import data.personagov.fixtures_test as f
import data.personagov.pdpa
import rego.v1

# s.13: no consent, no marketing (no legitimate-interest route).
test_pdpa_requires_consent if {
	r := f.rule_for(pdpa.subject_exclusions, "pdpa.no_consent") with input as f.marketing("SG", f.analyst_sg)
	r.condition == {"not": {"field": "marketing_consent", "op": "eq", "value": true}}
}

test_pdpa_withdrawal_and_children if {
	rules := pdpa.subject_exclusions with input as f.marketing("SG", f.analyst_sg)
	f.reasons(rules) == {"pdpa.no_consent", "pdpa.consent_withdrawn", "pdpa.child"}
}

# Part IX: Do Not Call -> phone channel suppressed, phone columns nulled per customer.
test_do_not_call_suppresses_phone_channel if {
	"suppress_channel:phone" in pdpa.obligations with input as f.marketing("SG", f.analyst_sg)
	some n in pdpa.nullings with input as f.marketing("SG", f.analyst_sg)
	n.reason == "pdpa.do_not_call"
	n.condition == {"field": "do_not_call", "op": "eq", "value": true}
	"phone" in n.columns
}

test_pdpa_only_for_singapore_marketing if {
	count(pdpa.subject_exclusions) == 0 with input as f.kyc("SG", f.analyst_sg)
	count(pdpa.obligations) == 0 with input as f.marketing("BR", f.analyst_br)
}
