package auth

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

// Actions checked by the server; they are the act field of the ACL.
const (
	ActionProduce = "produce"
	ActionConsume = "consume"
	ActionServers = "servers"
)

var (
	//go:embed model.conf
	defaultModel string
	//go:embed policy.csv
	defaultPolicy []byte
)

// Authorizer decides whether a subject may perform an action on an object.
// It is safe for concurrent use.
//
// The policy is read-only once loaded, so the model's decision for a
// (subject, object, action) never changes: decisions are cached (up to
// maxCachedDecisions of them), which spares every RPC a casbin evaluation.
type Authorizer struct {
	enforcer *casbin.SyncedEnforcer

	decisions sync.Map // decisionKey -> bool
	cached    atomic.Int64
}

// maxCachedDecisions bounds the decision cache; past it, decisions are
// evaluated every time (subjects are certificate names, not a closed set).
const maxCachedDecisions = 4096

type decisionKey struct{ subject, object, action string }

// NewAuthorizer loads the casbin model and policy from files; an empty path
// selects the embedded default for that file.
func NewAuthorizer(modelFile, policyFile string) (*Authorizer, error) {
	modelText := defaultModel
	if modelFile != "" {
		b, err := os.ReadFile(modelFile)
		if err != nil {
			return nil, fmt.Errorf("auth: read ACL model: %w", err)
		}
		modelText = string(b)
	}
	policy := defaultPolicy
	if policyFile != "" {
		b, err := os.ReadFile(policyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: read ACL policy: %w", err)
		}
		policy = b
	}
	return NewAuthorizerFromText(modelText, policy)
}

// NewAuthorizerFromText is NewAuthorizer for in-memory model and policy text.
func NewAuthorizerFromText(modelText string, policy []byte) (*Authorizer, error) {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("auth: parse ACL model: %w", err)
	}
	e, err := casbin.NewSyncedEnforcer(m, &policyAdapter{text: policy})
	if err != nil {
		return nil, fmt.Errorf("auth: load ACL policy: %w", err)
	}
	return &Authorizer{enforcer: e}, nil
}

// Authorize returns nil if subject may perform action on object, and an
// error wrapping ErrPermissionDenied otherwise (or if the model fails to
// evaluate: deny by default).
func (a *Authorizer) Authorize(subject, object, action string) error {
	key := decisionKey{subject, object, action}
	var ok bool
	if v, hit := a.decisions.Load(key); hit {
		ok = v.(bool)
	} else {
		var err error
		ok, err = a.enforcer.Enforce(subject, object, action)
		if err != nil {
			return fmt.Errorf("%w: %s may not %s %s: evaluating ACL: %v", ErrPermissionDenied, subject, action, object, err)
		}
		if a.cached.Load() < maxCachedDecisions {
			if _, loaded := a.decisions.LoadOrStore(key, ok); !loaded {
				a.cached.Add(1)
			}
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s may not %s %s", ErrPermissionDenied, subject, action, object)
	}
	return nil
}

// policyAdapter loads policy lines from memory and, unlike casbin's string
// adapter, reports malformed lines instead of skipping them: a typo in an ACL
// must not silently drop a rule.
type policyAdapter struct{ text []byte }

func (a *policyAdapter) LoadPolicy(m model.Model) error {
	sc := bufio.NewScanner(bytes.NewReader(a.text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := loadPolicyLine(line, m); err != nil {
			return fmt.Errorf("policy line %d %q: %w", n, line, err)
		}
	}
	return sc.Err()
}

func loadPolicyLine(line string, m model.Model) (err error) {
	// casbin indexes the model by the line's first field; guard against
	// its panics on shapes the model does not declare.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed rule: %v", r)
		}
	}()
	fields := strings.Split(line, ",")
	ptype := strings.TrimSpace(fields[0])
	sec := ptype[:1]
	ast, ok := m[sec][ptype]
	if !ok {
		return fmt.Errorf("rule type %q is not in the model", ptype)
	}
	if got, want := len(fields)-1, len(ast.Tokens); got != want {
		return fmt.Errorf("rule has %d fields, the model's %q needs %d", got, ptype, want)
	}
	return persist.LoadPolicyLine(line, m)
}

func (a *policyAdapter) SavePolicy(model.Model) error                { return errReadOnly }
func (a *policyAdapter) AddPolicy(string, string, []string) error    { return errReadOnly }
func (a *policyAdapter) RemovePolicy(string, string, []string) error { return errReadOnly }
func (a *policyAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
}
