package agent

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GossipKeyFile is the file LoadOrCreateGossipKey uses in a data directory.
const GossipKeyFile = "gossip.key"

// DecodeGossipKey decodes a base64 (standard or URL alphabet, padded or
// not) gossip key and checks its length: 16, 24 or 32 bytes.
func DecodeGossipKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no gossip key (base64 of 16, 24 or 32 bytes)")
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %v", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	default:
		return nil, fmt.Errorf("gossip key is %d bytes, want 16, 24 or 32", len(key))
	}
}

// GenerateGossipKey returns a new random 32-byte key, base64-encoded.
func GenerateGossipKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("agent: generate gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// ReadGossipKeyFile returns the key in path (base64, surrounding white
// space ignored), checked.
func ReadGossipKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agent: read gossip key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if _, err := DecodeGossipKey(key); err != nil {
		return "", fmt.Errorf("agent: gossip key file %s: %w", path, err)
	}
	return key, nil
}

// LoadOrCreateGossipKey returns the key stored in dir/gossip.key, creating
// the file (mode 0600) with a new key if it does not exist. For
// development: a cluster needs the same key on every node, which a key
// generated per data directory is not.
func LoadOrCreateGossipKey(dir string) (key string, created bool, err error) {
	path := filepath.Join(dir, GossipKeyFile)
	key, err = ReadGossipKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if key, err = GenerateGossipKey(); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("agent: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it meanwhile: use theirs.
		key, err = ReadGossipKeyFile(path)
		return key, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("agent: create gossip key: %w", err)
	}
	_, werr := f.WriteString(key + "\n")
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("agent: write gossip key: %w", werr)
	}
	return key, true, nil
}
