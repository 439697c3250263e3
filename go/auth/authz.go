package auth

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	"go.uber.org/zap"

	"github.com/proglog/proglog/go/commitlog"
	"github.com/proglog/proglog/go/internal/netlimit"
)

// Actions checked by the server; they are the act field of the ACL. The
// object of produce, consume, create, delete and describe is a topic's
// name; that of group a consumer group's name; that of servers is
// DefaultObject.
const (
	ActionProduce  = "produce"
	ActionConsume  = "consume"
	ActionServers  = "servers"
	ActionCreate   = "create"
	ActionDelete   = "delete"
	ActionDescribe = "describe"
	// ActionGroup on a group's name lets a client be a member of the
	// group, commit and fetch its offsets and describe it (the member
	// calls need ActionConsume on the group's topics too); ListGroups
	// lists the groups the caller has it on.
	ActionGroup = "group"
	// ActionACL on "*" lets a client change the ACL rules kept in the
	// cluster's metadata (log.proto's CreateACLs and DeleteACLs).
	ActionACL = "acl"
	// ActionRead on ObjectReflection lets a client list the server's
	// services and their schemas with gRPC server reflection.
	ActionRead = "read"
	// ActionAll in a rule stands for every action (the built-in model's
	// matcher).
	ActionAll = "*"
)

// ObjectAll is the object of the cluster-wide actions (ActionACL, and
// ActionDescribe for listing the ACL rules): only a rule whose object is
// "*" matches it.
const ObjectAll = "*"

// Actions returns the actions a rule may name: the Action constants,
// ActionAll included, sorted.
func Actions() []string {
	return []string{ActionAll, ActionACL, ActionConsume, ActionCreate, ActionDelete, ActionDescribe, ActionGroup, ActionProduce, ActionRead, ActionServers}
}

// ObjectReflection is the ACL object of gRPC server reflection (the
// services and their descriptors, not a log's data).
const ObjectReflection = "reflection"

// DefaultObject is the ACL object of ActionServers: the default topic's
// name, the object every action was checked on before topics, so the
// policies written then keep granting it.
const DefaultObject = "log"

var (
	//go:embed model.conf
	defaultModel string
	//go:embed policy.csv
	defaultPolicy []byte
)

// Authorizer decides whether a subject may perform an action on an object.
// It is safe for concurrent use.
//
// A request is allowed when the policy file allows it or the rules of the
// last SetRules (those kept in the cluster's metadata) do. The rules
// evaluate with the policy file's role assignments ("g" lines), so a rule
// may name a role as its subject.
//
// The policy file is read-only once loaded and the rules change only as a
// whole (SetRules), so the decision for a (subject, object, action) is
// fixed for one rule set: decisions are cached per rule set (up to
// maxCachedDecisions of them), which spares every RPC a casbin
// evaluation, and a new rule set starts with an empty cache.
//
// A request the model fails to evaluate is denied, logged (at most once per
// evalErrorLogInterval, with the number of errors not logged since) and
// counted (EvalErrors).
type Authorizer struct {
	enforcer  *casbin.SyncedEnforcer // the policy file's
	modelText string
	logger    *zap.Logger
	// policy are the policy file's rules (PolicyRules); groups its role
	// assignments by ptype, which the rules' enforcers get too.
	policy []commitlog.ACLRule
	groups map[string][][]string
	// objects are the policy's objects (patterns such as "orders.*").
	objects []string

	// rules is the current rule set, swapped whole by SetRules: Authorize
	// takes no lock of its own.
	rules atomic.Pointer[ruleSet]

	evalErrors atomic.Uint64
	evalLog    netlimit.Sometimes // Interval evalErrorLogInterval
}

// ruleSet is one generation of the rules of SetRules, with the decisions
// made while it was current.
type ruleSet struct {
	// enforcer evaluates the rules; nil when there are none.
	enforcer *casbin.SyncedEnforcer
	// objects are those of the policy file and of the rules, which
	// AuthorizeAny tries.
	objects []string

	decisions sync.Map // decisionKey -> bool
	cached    atomic.Int64
}

// evalErrorLogInterval is the least time between two logged evaluation
// errors: a broken ACL fails every call, and each would log.
const evalErrorLogInterval = 10 * time.Second

// The request NewAuthorizer evaluates to prove that the model works (with
// ActionProduce); its answer does not matter, only that there is one.
const (
	probeSubject = "proglog-acl-probe"
	probeObject  = "log"
)

// AuthorizerOption configures NewAuthorizer and NewAuthorizerFromText.
type AuthorizerOption func(*Authorizer)

// WithLogger sets where the Authorizer warns about an empty policy and logs
// evaluation errors; without it, nowhere.
func WithLogger(l *zap.Logger) AuthorizerOption {
	return func(a *Authorizer) { a.logger = l }
}

// maxCachedDecisions bounds the decision cache; past it, decisions are
// evaluated every time (subjects are certificate names, not a closed set).
const maxCachedDecisions = 4096

// decisionKey is a cached decision: of Authorize, or of AuthorizeAny
// (any set, object empty).
type decisionKey struct {
	subject, object, action string
	any                     bool
}

// NewAuthorizer loads the casbin model and policy from files; an empty path
// selects the embedded default for that file.
//
// It fails if the model cannot evaluate a probe request (a made-up subject
// producing to "log"), such as a matcher calling an unknown function: such
// a model would deny every call. A policy without a rule is valid (it
// denies everything) but logged as a warning.
func NewAuthorizer(modelFile, policyFile string, opts ...AuthorizerOption) (*Authorizer, error) {
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
	return NewAuthorizerFromText(modelText, policy, opts...)
}

// NewAuthorizerFromText is NewAuthorizer for in-memory model and policy text.
func NewAuthorizerFromText(modelText string, policy []byte, opts ...AuthorizerOption) (*Authorizer, error) {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("auth: parse ACL model: %w", err)
	}
	e, err := casbin.NewSyncedEnforcer(m, &policyAdapter{text: policy})
	if err != nil {
		return nil, fmt.Errorf("auth: load ACL policy: %w", err)
	}
	a := &Authorizer{enforcer: e, modelText: modelText, logger: zap.NewNop(), evalLog: netlimit.Sometimes{Interval: evalErrorLogInterval}}
	for _, o := range opts {
		o(a)
	}
	if _, err := e.Enforce(probeSubject, probeObject, ActionProduce); err != nil {
		return nil, fmt.Errorf("auth: the ACL model cannot evaluate a request (%s %s %s): %w", probeSubject, ActionProduce, probeObject, err)
	}
	if rules, err := e.GetPolicy(); err == nil && len(rules) == 0 {
		a.logger.Warn("the ACL policy has no rule: every call will be denied")
	}
	if a.objects, err = e.GetAllObjects(); err != nil {
		return nil, fmt.Errorf("auth: list the ACL policy's objects: %w", err)
	}
	lines, err := e.GetPolicy()
	if err != nil {
		return nil, fmt.Errorf("auth: list the ACL policy's rules: %w", err)
	}
	for _, p := range lines {
		if len(p) >= 3 {
			a.policy = append(a.policy, commitlog.ACLRule{Subject: p[0], Object: p[1], Action: p[2]})
		}
	}
	a.groups = map[string][][]string{}
	for ptype := range m["g"] {
		if a.groups[ptype], err = e.GetNamedGroupingPolicy(ptype); err != nil {
			return nil, fmt.Errorf("auth: list the ACL policy's roles: %w", err)
		}
	}
	a.rules.Store(&ruleSet{objects: a.objects})
	return a, nil
}

// PolicyRules returns the policy file's rules (its "p" lines, the first
// three fields of each; role assignments are not rules).
func (a *Authorizer) PolicyRules() []commitlog.ACLRule { return slices.Clone(a.policy) }

// SetRules replaces the rules evaluated beside the policy file (the
// cluster's metadata rules) with rules, and forgets every decision made
// before. It fails, keeping the current rules, if the model's policy is
// not (sub, obj, act) or a rule cannot be loaded. Calls must not race each
// other (the last to finish wins); Authorize may run meanwhile and sees
// the old rules or the new ones.
func (a *Authorizer) SetRules(rules []commitlog.ACLRule) error {
	rs := &ruleSet{}
	objects := slices.Clone(a.objects)
	if len(rules) > 0 {
		m, err := model.NewModelFromString(a.modelText)
		if err != nil {
			return fmt.Errorf("auth: parse ACL model: %w", err)
		}
		if p, ok := m["p"]["p"]; !ok || len(p.Tokens) != 3 {
			return fmt.Errorf("auth: the ACL model's policy is not (sub, obj, act): rules cannot be evaluated with it")
		}
		lines := make([][]string, len(rules))
		for i, r := range rules {
			lines[i] = []string{r.Subject, r.Object, r.Action}
			objects = append(objects, r.Object)
		}
		if rs.enforcer, err = casbin.NewSyncedEnforcer(m, &rulesAdapter{rules: lines, groups: a.groups}); err != nil {
			return fmt.Errorf("auth: load ACL rules: %w", err)
		}
	}
	slices.Sort(objects)
	rs.objects = slices.Compact(objects)
	a.rules.Store(rs)
	return nil
}

// EvalErrors returns how many requests the model failed to evaluate (each
// was denied).
func (a *Authorizer) EvalErrors() uint64 { return a.evalErrors.Load() }

// evalFailed counts an evaluation error and logs it unless one was logged
// less than evalErrorLogInterval ago.
func (a *Authorizer) evalFailed(subject, object, action string, err error) {
	a.evalErrors.Add(1)
	ok, suppressed := a.evalLog.Allow()
	if !ok {
		return
	}
	a.logger.Error("ACL evaluation failed; the request is denied",
		zap.String("subject", subject), zap.String("object", object), zap.String("action", action),
		zap.Error(err), zap.Int("errors_not_logged_since_last", suppressed))
}

// Authorize returns nil if subject may perform action on object, and an
// error wrapping ErrPermissionDenied otherwise (or if the model fails to
// evaluate: deny by default).
func (a *Authorizer) Authorize(subject, object, action string) error {
	return a.authorize(a.rules.Load(), subject, object, action)
}

// authorize is Authorize with the rule set rs.
func (a *Authorizer) authorize(rs *ruleSet, subject, object, action string) error {
	ok, err := rs.decide(decisionKey{subject: subject, object: object, action: action}, func() (bool, error) {
		ok, err := a.enforcer.Enforce(subject, object, action)
		if ok || err != nil || rs.enforcer == nil {
			return ok, err
		}
		return rs.enforcer.Enforce(subject, object, action)
	})
	if err != nil {
		a.evalFailed(subject, object, action, err)
		return fmt.Errorf("%w: %s may not %s %s: evaluating ACL: %v", ErrPermissionDenied, subject, action, object, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s may not %s %s", ErrPermissionDenied, subject, action, object)
	}
	return nil
}

// AuthorizeAny returns nil if subject may perform action on at least one
// object: one of the objects of the policy and of the rules, taken as the
// request's object (a
// pattern such as "orders.*" matches itself under keyMatch, the built-in
// model's matcher; a model whose matcher does not match a pattern with
// itself, a regular expression say, may be refused here what Authorize
// would allow on some topic). The server uses it to refuse
// a call before reading its message, when the object (the topic) is only
// known after decoding; it then checks the object with Authorize.
func (a *Authorizer) AuthorizeAny(subject, action string) error {
	rs := a.rules.Load()
	ok, _ := rs.decide(decisionKey{subject: subject, action: action, any: true}, func() (bool, error) {
		for _, object := range rs.objects {
			if a.authorize(rs, subject, object, action) == nil {
				return true, nil
			}
		}
		return false, nil
	})
	if !ok {
		return fmt.Errorf("%w: %s may not %s on any object", ErrPermissionDenied, subject, action)
	}
	return nil
}

// decide returns the cached decision of key, or evaluates it with eval and
// caches it unless the cache is full or eval failed.
func (rs *ruleSet) decide(key decisionKey, eval func() (bool, error)) (bool, error) {
	if v, hit := rs.decisions.Load(key); hit {
		return v.(bool), nil
	}
	ok, err := eval()
	if err != nil {
		return false, err
	}
	if rs.cached.Load() < maxCachedDecisions {
		if _, loaded := rs.decisions.LoadOrStore(key, ok); !loaded {
			rs.cached.Add(1)
		}
	}
	return ok, nil
}

// rulesAdapter loads the rules of SetRules, and the policy file's role
// assignments, into a model.
type rulesAdapter struct {
	rules  [][]string
	groups map[string][][]string
}

func (a *rulesAdapter) LoadPolicy(m model.Model) error {
	if err := m.AddPolicies("p", "p", a.rules); err != nil {
		return err
	}
	for ptype, lines := range a.groups {
		if len(lines) > 0 {
			if err := m.AddPolicies("g", ptype, lines); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *rulesAdapter) SavePolicy(model.Model) error                { return errReadOnly }
func (a *rulesAdapter) AddPolicy(string, string, []string) error    { return errReadOnly }
func (a *rulesAdapter) RemovePolicy(string, string, []string) error { return errReadOnly }
func (a *rulesAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
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
