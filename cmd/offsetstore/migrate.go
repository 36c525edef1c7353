package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/outboxkit/offsetstore/migrations"
)

// migrationsURL is the connection string for package migrations, which
// reads every form the other commands accept itself. It needs a non-empty
// one, so with neither --database-url nor $DATABASE_URL it gets a
// keyword/value string that sets only application_name: pgx takes
// everything else from the PG* variables, as for the other commands.
func (a *app) migrationsURL() string {
	if s := a.connString(); s != "" {
		return s
	}
	return "application_name=offsetstore"
}

func (a *app) printVersion(ctx context.Context) error {
	v, dirty, err := migrations.Version(ctx, a.migrationsURL())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "version=%d dirty=%t\n", v, dirty)
	return err
}

func newMigrateCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back or report the schema migrations",
		Long: `Apply, roll back or report the schema migrations embedded in this binary
(package migrations), recorded in the table ` + migrations.MigrationsTable + `, the
same one the migrate CLI uses with x-migrations-table=` + migrations.MigrationsTable + `.
The migrations create the table journal; --table of the other commands does
not apply here.

Each subcommand prints the version afterwards as version=N dirty=BOOL.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return usageErrorf("%s needs a command: up, down or version", cmd.CommandPath())
		},
		RunE: func(*cobra.Command, []string) error { return nil }, // not reached: Args refuses
	}
	up := &cobra.Command{
		Use:     "up",
		Short:   "Apply every migration not yet applied",
		Example: `  offsetstore migrate up --database-url postgres://user:pass@host:5432/db`,
		Args:    exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			if err := migrations.Up(ctx, a.migrationsURL()); err != nil {
				return err
			}
			return a.printVersion(ctx)
		}),
	}
	var yes bool
	down := &cobra.Command{
		Use:   "down",
		Short: "Roll every migration back: drops the journal table and all its rows (needs --yes)",
		Long: `Roll every migration back. This drops the journal table with every event and
every snapshot in it, so it refuses to run without --yes.`,
		Example: `  offsetstore migrate down --yes`,
		Args:    exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			if !yes {
				return usageErrorf("migrate down drops the journal table and every row in it; pass --yes to confirm")
			}
			if err := migrations.Down(ctx, a.migrationsURL()); err != nil {
				return err
			}
			return a.printVersion(ctx)
		}),
	}
	down.Flags().BoolVar(&yes, "yes", false, "confirm that the journal table and its rows are to be dropped")
	version := &cobra.Command{
		Use:   "version",
		Short: "Print the applied migration version (0: none) and whether it is dirty",
		Args:  exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			return a.printVersion(ctx)
		}),
	}
	cmd.AddCommand(up, down, version)
	return cmd
}
