package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

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
	const command = "sealpost account create"
	database := DefaultDatabase
	var username, email string
	fs := newFlagSet(command, getenv, stderr)
	fs.String(&database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	fs.StringVar(&username, "username", "", "the new account's username (required)")
	fs.StringVar(&email, "email", "", "the new account's email address")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, command, err)
	}
	if _, _, err := storeKind(database); err != nil {
		return usageError(stderr, command, err)
	}
	store, _, err := openStore(ctx, database, false, "")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	defer store.Close()
	account, token, err := createAccount(ctx, store, username, email)
	if err != nil {
		switch sealpost.ErrorCode(err) {
		case sealpost.EINVALID:
			for _, p := range sealpost.ErrorFields(err) {
				fmt.Fprintf(stderr, "%s: %s\n", command, p.Message)
			}
			return 2
		case sealpost.ECONFLICT:
			fmt.Fprintf(stderr, "%s: username %q is taken\n", command, username)
			return 1
		}
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	fmt.Fprintf(stderr, "created account %q (id %d); its API key is on stdout and is shown only once\n", account.Username, account.ID)
	fmt.Fprintln(stdout, token)
	return 0
}

// runAPIKeyCreate gives an existing account a new full-access key: the way
// back in for an operator who lost the key printed at bootstrap or by
// "account create". It needs access to the database, not to the API.
func runAPIKeyCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	const command = "sealpost apikey create"
	database := DefaultDatabase
	var username string
	name := "Full access key (created with sealpost apikey create)"
	fs := newFlagSet(command, getenv, stderr)
	fs.String(&database, "database", "sqlite:PATH, a file path, or a postgres:// URL")
	fs.StringVar(&username, "username", "", "the account to give the key to (required)")
	fs.StringVar(&name, "name", name, "the key's name")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, command, err)
	}
	var problems []string
	if username == "" {
		problems = append(problems, "--username is required")
	}
	if p := sealpost.ValidateKeyName("--name", name); p != nil {
		problems = append(problems, p.Message)
	}
	if _, _, err := storeKind(database); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return usageError(stderr, command, errors.New(strings.Join(problems, "; ")))
	}
	store, _, err := openStore(ctx, database, false, "")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	defer store.Close()
	account, err := store.AccountByUsername(ctx, username)
	if sealpost.ErrorCode(err) == sealpost.ENOTFOUND {
		fmt.Fprintf(stderr, "%s: no account named %q\n", command, username)
		return 1
	} else if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	key, token, err := sealpost.NewAPIKey(account.ID, name, sealpost.FullAccessScopes(account.Kind))
	if err == nil {
		err = store.CreateAPIKey(ctx, key)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", command, err)
		return 1
	}
	fmt.Fprintf(stderr, "created API key %q (id %s) for account %q; it is on stdout and is shown only once\n", name, key.ID, account.Username)
	fmt.Fprintln(stdout, token)
	return 0
}
