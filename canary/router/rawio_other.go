//go:build !linux

package router

import "net"

// rawIO is Linux only; elsewhere connections use the net package's calls.
type rawIO struct{}

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) read([]byte) (int, error)  { panic("unreachable") }
func (*rawIO) write([]byte) (int, error) { panic("unreachable") }
