package httpx

// PrincipalHeader carries the principal the edge authenticated to writers
// and rails. The edge always sets it itself; a client's header of that
// name never passes.
const PrincipalHeader = "X-Hedge-Principal"

// ValidPrincipal reports whether s can be carried to writers as a
// principal without any chance of being read as something else: 1 to max
// bytes of visible ASCII with none of the characters that separate or
// quote values in HTTP fields (`"`, `\`, `,`, `;`). The edge refuses
// tokens whose subject fails it, whatever auth.jwt.subject_pattern allows,
// and writers (the ledger simulator) hold the principal header to it.
func ValidPrincipal(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c > '~':
			return false
		case c == '"' || c == '\\' || c == ',' || c == ';':
			return false
		}
	}
	return true
}
