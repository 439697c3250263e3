// Package auth secures proglog's gRPC API: TLS configuration, authentication
// of clients by certificate, and authorization by access-control list.
//
// TLS. TLSConfig builds server and client *tls.Config values: TLS 1.2 at
// least (only forward-secret AEAD suites), TLS 1.3 preferred (Go negotiates
// it whenever both sides support it). A server given a CA verifies client
// certificates against it (mutual TLS).
//
// Authentication. The principal of a call is the subject common name of the
// client certificate verified during the TLS handshake. The interceptors of
// UnaryServerInterceptor and StreamServerInterceptor put it in the context
// (read it with Subject) and reject calls without one with
// codes.Unauthenticated: no peer, a non-TLS connection, no verified chain or
// an empty common name. They never panic on missing connection state.
//
// Authorization. Authorizer evaluates a casbin model and policy: the request
// is (subject, object, action), where object is a topic's name, such as
// "log" (the default topic), matched against the policy's objects with
// casbin's keyMatch ("orders.*" covers every topic named "orders."
// something, "*" everything), and action is one of ActionProduce,
// ActionConsume, ActionCreate, ActionDelete and ActionDescribe; ActionGroup
// is checked on a consumer group's name; ActionServers
// is checked on DefaultObject ("log", as before topics), gRPC server
// reflection is the object ObjectReflection with the action ActionRead,
// and changing the ACL rules of the metadata is ActionACL on ObjectAll
// ("*"; listing them is ActionDescribe on ObjectAll). Actions lists what
// a rule may name (ActionAll, "*", is every action).
// Consumer groups are objects too, named like topics and matched by the
// same rules (a "*" or "orders.*" object covers groups of those names as
// well as topics): ActionGroup on a group's name allows its member calls,
// offsets and description, with ActionConsume on each topic a member
// subscribes to or commits.
// AuthorizeAny answers whether a subject may perform an action on at least
// one object, for a check before the object is known (the server's
// admission of a call before its message is read). Anything not explicitly allowed is denied. The defaults
// (model.conf and policy.csv in this directory, embedded in the binary) allow
// "root" everything on every resource and nobody else anything; operators
// pass their own files to NewAuthorizer. NewAuthorizer refuses a model that
// cannot evaluate a probe request (a matcher calling an unknown function,
// say), since it would deny every call, and warns (WithLogger) about a
// policy without a rule. A request the model still fails to evaluate is
// denied, logged at error at most once per evalErrorLogInterval, and counted
// (EvalErrors; the agent exports it as proglog_acl_eval_errors_total).
//
// Rules at run time. Besides the policy file, the Authorizer evaluates the
// rules kept in the cluster's metadata (log.proto's CreateACLs), which the
// node hands it with SetRules whenever its copy of the metadata changes
// them: a request is allowed when the policy file or the rules allow it
// (rules only allow). The rules evaluate with the same model and with the
// policy file's role assignments, so a rule's subject may be a role; they
// need a model whose policy is (sub, obj, act), as the default one.
// SetRules swaps in a new rule set whole (an atomic pointer: Authorize
// takes no lock of its own), and the decision cache belongs to the rule
// set, so no decision made under old rules is answered under new ones.
// PolicyRules lists the policy file's rules (ListACLs marks them), which
// cannot be deleted at run time.
package auth
