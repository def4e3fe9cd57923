package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sealpost/sealpost"
)

// createAccount creates a top-level account and its first full-access key.
func createAccount(ctx context.Context, store sealpost.Store, username, email string) (*sealpost.Account, string, error) {
	var problems []sealpost.FieldError
	if p := sealpost.ValidateUsername("username", username); p != nil {
		problems = append(problems, *p)
	}
	if email != "" {
		if p := sealpost.ValidateEmail("email", email); p != nil {
			problems = append(problems, *p)
		}
	}
	if len(problems) > 0 {
		return nil, "", sealpost.Invalid(problems...)
	}
	account := &sealpost.Account{Kind: sealpost.KindUser, Username: username, Email: email}
	if err := store.CreateAccount(ctx, account); err != nil {
		return nil, "", err
	}
	key, token, err := sealpost.NewAPIKey(account.ID, "Full access key (created with the account)", sealpost.FullAccessScopes(sealpost.KindUser))
	if err != nil {
		return nil, "", err
	}
	if err := store.CreateAPIKey(ctx, key); err != nil {
		return nil, "", err
	}
	return account, token, nil
}

func runAccountCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	database := DefaultDatabase
	var username, email string
	fs := newFlagSet("sealpost account create", getenv, stderr)
	fs.String(&database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	fs.StringVar(&username, "username", "", "the new account's username (required)")
	fs.StringVar(&email, "email", "", "the new account's email address")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sealpost account create: %v\n", err)
		return 2
	}
	store, _, err := openStore(ctx, database, false)
	if err != nil {
		fmt.Fprintf(stderr, "sealpost account create: %v\n", err)
		return 1
	}
	defer store.Close()
	account, token, err := createAccount(ctx, store, username, email)
	if err != nil {
		switch sealpost.ErrorCode(err) {
		case sealpost.EINVALID:
			for _, p := range sealpost.ErrorFields(err) {
				fmt.Fprintf(stderr, "sealpost account create: %s\n", p.Message)
			}
			return 2
		case sealpost.ECONFLICT:
			fmt.Fprintf(stderr, "sealpost account create: username %q is taken\n", username)
			return 1
		}
		fmt.Fprintf(stderr, "sealpost account create: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "created account %q (id %d); its API key is on stdout and is shown only once\n", account.Username, account.ID)
	fmt.Fprintln(stdout, token)
	return 0
}
