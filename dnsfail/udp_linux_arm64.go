package dnsfail

const (
	sysSendmmsg   = 269
	msgWaitForOne = 0x10000
)
