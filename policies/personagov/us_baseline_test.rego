package personagov.us_baseline_test

import data.personagov.fixtures_test as f
import data.personagov.us_baseline
import rego.v1

# GLBA-style baseline for US-NY: any opt-out signal excludes from marketing.
test_ny_opt_out_baseline if {
	r := f.rule_for(us_baseline.subject_exclusions, "us_baseline.opt_out") with input as f.marketing("US-NY", f.analyst_us)
	count(r.condition.any) == 4
	contains(r.article, "6802(b)")
}

# COPPA: under 13 excluded.
test_ny_children_under_13 if {
	r := f.rule_for(us_baseline.subject_exclusions, "us_baseline.child") with input as f.marketing("US-NY", f.analyst_us)
	r.condition.any[0].value == 13
}

test_baseline_only_for_ny if {
	count(us_baseline.subject_exclusions) == 0 with input as f.marketing("US-CA", f.analyst_us)
	count(us_baseline.subject_exclusions) == 0 with input as f.kyc("US-NY", f.analyst_us)
}

# Citations follow the regime: a US-NY column action never cites the GDPR.
test_ny_column_actions_cite_us_law if {
	d := data.personagov.decision.decision with input as f.marketing("US-NY", f.analyst_us)
	every _, a in d.sources.crm.columns {
		not contains(a.article, "GDPR")
	}
}
