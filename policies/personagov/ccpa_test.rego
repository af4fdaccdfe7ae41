package personagov.ccpa_test

import data.personagov.ccpa
import data.personagov.fixtures_test as f
import rego.v1

# §1798.120: opt-out of sale/sharing (flag or request) excludes from behavioural advertising.
test_opt_out_of_sale_share_excludes if {
	r := f.rule_for(ccpa.subject_exclusions, "ccpa.opt_out_sale_share") with input as f.marketing("US-CA", f.analyst_us)
	{"field": "ccpa_do_not_sell_share", "op": "eq", "value": true} in r.condition.any
	{"field": "opt_out_requested", "op": "eq", "value": true} in r.condition.any
}

# Regs §7025: Global Privacy Control is an opt-out.
test_gpc_excludes if {
	r := f.rule_for(ccpa.subject_exclusions, "ccpa.gpc_signal") with input as f.marketing("US-CA", f.analyst_us)
	r.condition == {"field": "gpc_signal", "op": "eq", "value": true}
}

# §1798.120(c): under 16 needs an opt-in.
test_under_16_needs_opt_in if {
	r := f.rule_for(ccpa.subject_exclusions, "ccpa.minor_no_opt_in") with input as f.marketing("US-CA", f.analyst_us)
	r.condition.all[0].any[0] == {"field": "age_years", "op": "lt", "value": 16}
	r.condition.all[1] == {"not": {"field": "marketing_consent", "op": "eq", "value": true}}
}

# §1798.121: limit-sensitive-PI nulls sensitive_pi columns per customer, for every purpose
# except the legal-obligation one.
test_limit_sensitive_pi_nulls_sensitive_columns if {
	some n in ccpa.nullings with input as f.marketing("US-CA", f.analyst_us)
	n.reason == "ccpa.limit_sensitive_pi"
	n.classification == "sensitive_pi"
	count(ccpa.nullings) == 1 with input as f.credit("US-CA", f.analyst_us)
	count(ccpa.nullings) == 0 with input as f.kyc("US-CA", f.analyst_us)
}

test_ccpa_marketing_rules_not_for_kyc_or_other_states if {
	count(ccpa.subject_exclusions) == 0 with input as f.kyc("US-CA", f.analyst_us)
	count(ccpa.subject_exclusions) == 0 with input as f.marketing("US-NY", f.analyst_us)
}
