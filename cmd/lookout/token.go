package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/config"
)

func init() {
	register(command{name: "token", summary: "make an API token and print it with the hash for auth.tokens", run: runToken})
}

// runToken prints a fresh random token and its hash, or with "hash" the hash
// of a token read from stdin, so operators never put a raw token in config.
func runToken(_ context.Context, _ config.Config, _ *slog.Logger, args []string) error {
	if len(args) > 0 && args[0] == "hash" {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read token from stdin: %w", err)
		}
		fmt.Println(auth.Hash(strings.TrimSpace(line)))
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	fmt.Printf("token:  %s\nsha256: %s\n", tok, auth.Hash(tok))
	return nil
}
