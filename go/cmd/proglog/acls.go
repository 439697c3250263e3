package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	client "github.com/proglog/proglog/clients/go"
	"github.com/proglog/proglog/go/auth"
)

func newACLsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acls",
		Short: "List, create and delete the cluster's ACL rules",
		Long: "acls manages the access rules kept in the cluster's metadata, which every server enforces\n" +
			"beside its policy file (a call is allowed when either allows it): list, create, delete.\n" +
			"Each subcommand takes the client flags of produce and consume (--addr, --dev, --tls-*).",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newACLsListCmd(stdout), newACLChangeCmd(stdout, "create"), newACLChangeCmd(stdout, "delete"))
	return cmd
}

// aclJSON is a rule in acls list --json, and the rule acls create and
// delete print with --json.
type aclJSON struct {
	Subject        string `json:"subject"`
	Object         string `json:"object"`
	Action         string `json:"action"`
	FromPolicyFile bool   `json:"from_policy_file"`
}

// describeRule is r as acls create and delete print it: each field
// named, which reads right for every action ("servers", "*").
func describeRule(r client.ACLRule) string {
	return fmt.Sprintf("subject %s, action %s, object %s", r.Subject, r.Action, r.Object)
}

func newACLsListCmd(stdout io.Writer) *cobra.Command {
	return newQueryCmd("list", "List the ACL rules: the cluster's metadata's, then the policy file's",
		"  proglog acls list --dev ./proglog-data",
		func(ctx context.Context, c *client.Client, asJSON bool) error {
			rules, err := c.ListACLs(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				for _, r := range rules {
					if err := writeJSON(stdout, aclJSON{r.Subject, r.Object, r.Action, r.FromPolicyFile}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBJECT\tOBJECT\tACTION\tSOURCE")
			for _, r := range rules {
				source := "metadata"
				if r.FromPolicyFile {
					source = "policy file"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Subject, r.Object, r.Action, source)
			}
			return tw.Flush()
		})
}

// newACLChangeCmd makes acls create or acls delete (verb) of the rule its
// flags name.
func newACLChangeCmd(stdout io.Writer, verb string) *cobra.Command {
	var r client.ACLRule
	short := "Create an ACL rule in the cluster's metadata"
	if verb == "delete" {
		short = "Delete an ACL rule from the cluster's metadata"
	}
	example := fmt.Sprintf("  proglog acls %s --subject orders-app --object 'orders-*' --action produce --dev ./proglog-data", verb)
	cmd := newQueryCmd(verb, short, example, func(ctx context.Context, c *client.Client, asJSON bool) error {
		change := c.CreateACLs
		if verb == "delete" {
			change = c.DeleteACLs
		}
		if err := change(ctx, []client.ACLRule{r}); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, aclJSON{Subject: r.Subject, Object: r.Object, Action: r.Action})
		}
		_, err := fmt.Fprintf(stdout, "%sd rule: %s\n", verb, describeRule(r))
		return err
	})
	fs := cmd.Flags()
	fs.StringVar(&r.Subject, "subject", "", "whom the rule allows: a client certificate's common name (proglog certs --client NAME), or a role of the policy file")
	fs.StringVar(&r.Object, "object", "", "what it allows it on: a topic or group name, with * wildcards (orders-*), or * for everything")
	fs.StringVar(&r.Action, "action", "", "what it allows: one of "+strings.Join(slices.DeleteFunc(auth.Actions(), func(a string) bool { return a == auth.ActionAll }), ", ")+", or * for every action")
	for _, f := range []string{"subject", "object", "action"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
