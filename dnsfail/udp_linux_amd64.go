package dnsfail

// The system calls the syscall package does not name on amd64.
const (
	sysSendmmsg   = 307
	msgWaitForOne = 0x10000
)
