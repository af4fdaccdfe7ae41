package personagov.kyc_ruleset_test

import rego.v1

import data.personagov.kyc_ruleset

rs := kyc_ruleset.ruleset

tier_rank := {"SDD": 0, "CDD": 1, "EDD": 2, "EDD_SENIOR": 3, "PROHIBITED": 4}

floor_for(code) := f if {
	some f in rs.floors
	f.reason_code == code
}

queue_index(name) := i if {
	some i, q in rs.queues
	q.queue == name
}

# ---------------------------------------------------------------- document shape

test_ruleset_has_version_from_data if {
	rs.version == data.kyc.ruleset_version
}

test_ruleset_undefined_without_data if {
	not kyc_ruleset.ruleset with data.kyc as {}
}

test_every_factor_family_is_represented if {
	families := {f.family | some f in rs.factors}
	families == {"customer", "geography", "product_channel", "transaction", "persona"}
}

test_factor_ids_and_reason_codes_unique if {
	count({f.id | some f in rs.factors}) == count(rs.factors)
	count({f.reason_code | some f in rs.factors}) == count(rs.factors)
}

test_factor_points_positive if {
	every f in rs.factors {
		f.points > 0
	}
}

test_every_factor_has_a_condition if {
	every f in rs.factors {
		is_object(f.condition)
	}
}

# ---------------------------------------------------------------- thresholds

test_thresholds_increase_and_start_at_zero if {
	rs.thresholds.SDD == 0
	rs.thresholds.SDD < rs.thresholds.CDD
	rs.thresholds.CDD < rs.thresholds.EDD
}

# ---------------------------------------------------------------- floors

test_pep_floor_is_edd_senior if {
	floor_for("PEP").min_tier == "EDD_SENIOR"
	floor_for("PEP").condition == {"field": "pep", "op": "eq", "value": true}
}

test_sanctions_floor_is_prohibited if {
	floor_for("SANCTIONS_HIT").min_tier == "PROHIBITED"
}

test_high_risk_country_floor_is_edd_and_uses_data_list if {
	f := floor_for("HIGH_RISK_THIRD_COUNTRY")
	f.min_tier == "EDD"
	f.condition.value == data.kyc.high_risk_third_countries
}

test_high_risk_country_list_follows_data if {
	f := floor_for("HIGH_RISK_THIRD_COUNTRY") with data.kyc.high_risk_third_countries as ["XX"]
	f.condition.value == ["XX"]
}

test_adverse_media_floor_is_edd if {
	floor_for("ADVERSE_MEDIA").min_tier == "EDD"
}

test_unscreened_is_never_sdd if {
	floor_for("SCREENING_MISSING").min_tier == "CDD"
}

test_floor_tiers_are_known if {
	every f in rs.floors {
		tier_rank[f.min_tier] >= 0
	}
}

# ---------------------------------------------------------------- review cycle (AMLR 26(2))

test_review_months_by_tier if {
	rs.review_months == {"SDD": 60, "CDD": 36, "EDD": 12, "EDD_SENIOR": 12, "PROHIBITED": 12}
}

test_review_months_within_amlr_caps if {
	every _, m in rs.review_months {
		m <= 60
		m > 0
	}
	every t in ["EDD", "EDD_SENIOR", "PROHIBITED"] {
		rs.review_months[t] <= 12
	}
}

# ---------------------------------------------------------------- queues

test_queue_order if {
	[q.queue | some q in rs.queues] == [
		"sanctions-escalation",
		"edd-senior-approval",
		"edd-review",
		"standard-review",
		"expedited-onboarding",
	]
}

test_sanctions_before_pep_before_edd if {
	queue_index("sanctions-escalation") < queue_index("edd-senior-approval")
	queue_index("edd-senior-approval") < queue_index("edd-review")
}

test_sla_days_positive_and_tightest_for_sanctions if {
	every q in rs.queues {
		q.sla_days > 0
	}
	slas := [q.sla_days | some q in rs.queues]
	rs.queues[queue_index("sanctions-escalation")].sla_days == min(slas)
}

test_default_queue_is_a_declared_queue if {
	rs.default_queue in {q.queue | some q in rs.queues}
}
