package ftw

// Profile is the configuration CRS's own regression tests are written for
// (rule 900005: detection only, the argument and file limits the tests
// probe), plus go-ftw's marker rule. go-ftw sends a marker request carrying
// X-CRS-Test before and after each test and reads the rule ids logged between
// the two markers; the marker rule logs the header and removes every other
// rule from that request so the markers themselves add nothing to the log.
// hedge (waf/crs, only in hedge_ftw builds) and the bare-Coraza reference
// (e2e/wafref) load the same text, so the suite compares like with like. The
// paranoia level (4) is set by each with rules 900000/900001.
const Profile = `
SecAction "id:900005,\
  phase:1,\
  nolog,\
  pass,\
  ctl:ruleEngine=DetectionOnly,\
  ctl:ruleRemoveById=910000,\
  setvar:tx.crs_validate_utf8_encoding=1,\
  setvar:tx.arg_name_length=100,\
  setvar:tx.arg_length=400,\
  setvar:tx.total_arg_length=64000,\
  setvar:tx.max_num_args=255,\
  setvar:tx.max_file_size=64100,\
  setvar:tx.combined_file_sizes=65535"
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" \
  "id:999999,\
  phase:1,\
  log,\
  pass,\
  t:none,\
  msg:'X-CRS-Test %{MATCHED_VAR}',\
  ctl:ruleRemoveById=1-999998"
`
