package personagov.transfers_test

import data.personagov.fixtures_test as f
import data.personagov.transfers
import rego.v1

# Art. 45: same region or adequacy.
test_adequacy_allows if {
	transfers.allowed("EU", "EU-DE")
	transfers.allowed("UK", "EU-FR")
	transfers.allowed("EU", "UK")
}

# Art. 46: a named mechanism allows; it is recorded as an obligation.
test_mechanism_allows_and_is_recorded if {
	transfers.allowed("EU", "SG")
	"transfer_mechanism:intra_group_binding_corporate_rules" in transfers.obligations with input as f.kyc("SG", f.compliance)
}

# Neither: denied.
test_no_adequacy_no_mechanism_denies if {
	not transfers.allowed("US", "BR")
	not transfers.allowed("SG", "EU-DE")
	"transfer.no_adequacy_or_mechanism" in transfers.deny with input as f.marketing("BR", f.actor("x", ["regional_analyst"], "US", ["BR"]))
}

test_unknown_jurisdiction_is_not_a_destination if {
	not transfers.allowed("EU", "MARS")
}
