// Copyright (c) 2025 Tulir Asokan
//
// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at http://mozilla.org/MPL/2.0/.

package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"go.mau.fi/util/exerrors"
	"go.mau.fi/util/exhttp"
	"go.mau.fi/util/exstrings"
	"go.mau.fi/util/jsontime"
	"go.mau.fi/util/requestlog"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/provisionutil"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

var ErrBridgeBackfillTimeout = mautrix.RespError{ErrCode: "FI.MAU.BRIDGE_BACKFILL_TIMEOUT", StatusCode: http.StatusGatewayTimeout}

type matrixAuthCacheEntry struct {
	Expires time.Time
	UserID  id.UserID
}

type ProvisioningAPI struct {
	Router *http.ServeMux

	br  *Connector
	log zerolog.Logger
	net bridgev2.NetworkConnector

	fedClient *federation.Client

	logins     map[string]*ProvLogin
	loginsLock sync.RWMutex

	matrixAuthCache     map[string]matrixAuthCacheEntry
	matrixAuthCacheLock sync.Mutex

	// GetAuthFromRequest is a custom function for getting the auth token from
	// the request if the Authorization header is not present.
	GetAuthFromRequest func(r *http.Request) string

	// GetUserIDFromRequest is a custom function for getting the user ID to
	// authenticate as instead of using the user ID provided in the query
	// parameter.
	GetUserIDFromRequest func(r *http.Request) id.UserID
}

type provisioningContextKey int

const (
	provisioningUserKey provisioningContextKey = iota
	ProvisioningKeyRequest
)

func (prov *ProvisioningAPI) GetUser(r *http.Request) *bridgev2.User {
	return r.Context().Value(provisioningUserKey).(*bridgev2.User)
}

func (prov *ProvisioningAPI) GetRouter() *http.ServeMux {
	return prov.Router
}

func (br *Connector) GetProvisioning() bridgev2.IProvisioningAPI {
	return br.Provisioning
}

const DefaultRequestIDHeader = "Request-Id"
const requestIDLogField = "request_id"

func copyRequestIDToLogContext(r *http.Request) func(zerolog.Context) zerolog.Context {
	reqID, ok := hlog.IDFromRequest(r)
	if !ok {
		return nil
	}
	return func(c zerolog.Context) zerolog.Context {
		return c.Stringer(requestIDLogField, reqID)
	}
}

func inputRequestIDMiddleware(header string) exhttp.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if reqID, err := xid.FromString(r.Header.Get(header)); err == nil {
				r = r.WithContext(hlog.CtxWithID(r.Context(), reqID))
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (prov *ProvisioningAPI) Init() {
	prov.matrixAuthCache = make(map[string]matrixAuthCacheEntry)
	prov.logins = make(map[string]*ProvLogin)
	prov.net = prov.br.Bridge.Network
	prov.log = prov.br.Log.With().Str("component", "provisioning").Logger()
	prov.fedClient = federation.NewClient("", nil, nil, exhttp.SensibleClientSettings.WithGlobalTimeout(20*time.Second))
	prov.Router = http.NewServeMux()
	prov.Router.HandleFunc("GET /v3/whoami", prov.GetWhoami)
	prov.Router.HandleFunc("GET /v3/capabilities", prov.GetCapabilities)
	prov.Router.HandleFunc("GET /v3/login/flows", prov.GetLoginFlows)
	prov.Router.HandleFunc("POST /v3/login/start/{flowID}", prov.PostLoginStart)
	prov.Router.HandleFunc("POST /v3/login/step/{loginProcessID}/{stepID}/{stepType}", prov.PostLoginStep)
	prov.Router.HandleFunc("POST /v3/login/step/{loginProcessID}/{stepID}/cancel", prov.PostLoginStepCancel)
	prov.Router.HandleFunc("POST /v3/login/client_http/{loginProcessID}/{txnID}/{reqID}", prov.PostLoginClientHTTP)
	prov.Router.HandleFunc("GET /v3/login/client_websocket/{loginProcessID}/{streamID}", prov.GetLoginClientWebSocket)
	prov.Router.HandleFunc("POST /v3/login/cancel/{loginProcessID}", prov.PostLoginCancel)
	prov.Router.HandleFunc("POST /v3/logout/{loginID}", prov.PostLogout)
	prov.Router.HandleFunc("GET /v3/logins", prov.GetLogins)
	prov.Router.HandleFunc("GET /v3/contacts", prov.GetContactList)
	prov.Router.HandleFunc("POST /v3/search_users", prov.PostSearchUsers)
	prov.Router.HandleFunc("GET /v3/resolve_identifier/{identifier}", prov.GetResolveIdentifier)
	prov.Router.HandleFunc("POST /v3/create_dm/{identifier}", prov.PostCreateDM)
	prov.Router.HandleFunc("POST /v3/create_group/{type}", prov.PostCreateGroup)
	prov.Router.HandleFunc("POST /v3/profile", prov.PostUpdateProfile)
	prov.Router.HandleFunc("POST /v3/backfill/{roomID}", prov.PostPaginate)
	prov.Router.HandleFunc("POST /v3/view_limited_media/{eventID}", prov.PostViewLimitedMedia)
	prov.Router.HandleFunc("GET /v3/poll_results/{eventID}", prov.GetPollResults)
	prov.Router.HandleFunc("GET /v3/image_pack/import", prov.ImportImagePack)
	prov.Router.HandleFunc("POST /v3/image_pack/import", prov.ImportImagePack)
	prov.Router.HandleFunc("GET /v3/image_pack/list", prov.ListImagePacks)
	prov.Router.HandleFunc("POST /v3/resolve_media/{eventID}", prov.PostResolveMedia)
	prov.Router.HandleFunc("DELETE /v3/direct_media_keys/{mediaID}", prov.DeleteDirectMediaKeys)

	if prov.br.Config.Provisioning.DebugEndpoints {
		prov.log.Debug().Msg("Enabling debug API at /debug")
		debugRouter := http.NewServeMux()
		debugRouter.HandleFunc("GET /pprof/cmdline", pprof.Cmdline)
		debugRouter.HandleFunc("GET /pprof/profile", pprof.Profile)
		debugRouter.HandleFunc("GET /pprof/symbol", pprof.Symbol)
		debugRouter.HandleFunc("GET /pprof/trace", pprof.Trace)
		debugRouter.HandleFunc("GET /pprof/{name}", func(w http.ResponseWriter, r *http.Request) {
			pprof.Handler(r.PathValue("name")).ServeHTTP(w, r)
		})
		debugRouter.HandleFunc("/pprof/", pprof.Index)
		prov.br.AS.Router.Handle("/debug/", exhttp.ApplyMiddleware(
			debugRouter,
			exhttp.StripPrefix("/debug"),
			hlog.NewHandler(prov.br.Log.With().Str("component", "debug api").Logger()),
			requestlog.AccessLogger(requestlog.Options{TrustXForwardedFor: true}),
			prov.DebugAuthMiddleware,
		))
	}

	errorBodies := exhttp.ErrorBodies{
		NotFound:         exerrors.Must(new(mautrix.MUnrecognized.WithMessage("Unrecognized endpoint")).MarshalJSON()),
		MethodNotAllowed: exerrors.Must(new(mautrix.MUnrecognized.WithMessage("Invalid method for endpoint")).MarshalJSON()),
	}
	requestIDHeader := prov.br.Config.Provisioning.RequestIDHeader
	if requestIDHeader == "" {
		requestIDHeader = DefaultRequestIDHeader
	}
	middlewares := []exhttp.Middleware{
		exhttp.StripPrefix("/_matrix/provision"),
		hlog.NewHandler(prov.log),
	}
	if prov.br.Config.Provisioning.TrustIncomingRequestID {
		middlewares = append(middlewares, inputRequestIDMiddleware(requestIDHeader))
	}
	middlewares = append(middlewares,
		hlog.RequestIDHandler(requestIDLogField, requestIDHeader),
		exhttp.CORSMiddleware,
		requestlog.AccessLogger(requestlog.Options{TrustXForwardedFor: true}),
		exhttp.HandleErrors(errorBodies),
		prov.AuthMiddleware,
	)
	prov.br.AS.Router.Handle("/_matrix/provision/", exhttp.ApplyMiddleware(prov.Router, middlewares...))
}

func (prov *ProvisioningAPI) checkMatrixAuth(ctx context.Context, userID id.UserID, token string) error {
	prov.matrixAuthCacheLock.Lock()
	defer prov.matrixAuthCacheLock.Unlock()
	if cached, ok := prov.matrixAuthCache[token]; ok && cached.Expires.After(time.Now()) && cached.UserID == userID {
		return nil
	} else if client, err := prov.br.DoublePuppet.newClient(ctx, userID, token); err != nil {
		return err
	} else if whoami, err := client.Whoami(ctx); err != nil {
		return err
	} else if whoami.UserID != userID {
		return fmt.Errorf("mismatching user ID (%q != %q)", whoami.UserID, userID)
	} else {
		prov.matrixAuthCache[token] = matrixAuthCacheEntry{
			Expires: time.Now().Add(5 * time.Minute),
			UserID:  whoami.UserID,
		}
		return nil
	}
}

func (prov *ProvisioningAPI) checkFederatedMatrixAuth(ctx context.Context, userID id.UserID, token string) error {
	homeserver := userID.Homeserver()
	wrappedToken := fmt.Sprintf("%s:%s", homeserver, token)
	// TODO smarter locking
	prov.matrixAuthCacheLock.Lock()
	defer prov.matrixAuthCacheLock.Unlock()
	if cached, ok := prov.matrixAuthCache[wrappedToken]; ok && cached.Expires.After(time.Now()) && cached.UserID == userID {
		return nil
	} else if validationResult, err := prov.fedClient.GetOpenIDUserInfo(ctx, homeserver, token); err != nil {
		return fmt.Errorf("failed to validate OpenID token: %w", err)
	} else if validationResult.Sub != userID {
		return fmt.Errorf("mismatching user ID (%q != %q)", validationResult, userID)
	} else {
		prov.matrixAuthCache[wrappedToken] = matrixAuthCacheEntry{
			Expires: time.Now().Add(1 * time.Hour),
			UserID:  userID,
		}
		return nil
	}
}

func disabledAuth(w http.ResponseWriter, r *http.Request) {
	mautrix.MForbidden.WithMessage("Provisioning API is disabled").Write(w)
}

func (prov *ProvisioningAPI) DebugAuthMiddleware(h http.Handler) http.Handler {
	secret := prov.br.Config.Provisioning.SharedSecret
	if len(secret) < 16 {
		return http.HandlerFunc(disabledAuth)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if auth == "" {
			mautrix.MMissingToken.WithMessage("Missing auth token").Write(w)
		} else if !exstrings.ConstantTimeEqual(auth, secret) {
			mautrix.MUnknownToken.WithMessage("Invalid auth token").Write(w)
		} else {
			h.ServeHTTP(w, r)
		}
	})
}

func (prov *ProvisioningAPI) AuthMiddleware(h http.Handler) http.Handler {
	secret := prov.br.Config.Provisioning.SharedSecret
	if len(secret) < 16 {
		return http.HandlerFunc(disabledAuth)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if auth == "" && prov.GetAuthFromRequest != nil {
			auth = prov.GetAuthFromRequest(r)
		}
		if auth == "" {
			mautrix.MMissingToken.WithMessage("Missing auth token").Write(w)
			return
		}
		userID := id.UserID(r.URL.Query().Get("user_id"))
		if userID == "" && prov.GetUserIDFromRequest != nil {
			userID = prov.GetUserIDFromRequest(r)
		}
		if !exstrings.ConstantTimeEqual(auth, secret) {
			var err error
			if !prov.br.Config.Provisioning.AllowMatrixAuth {
				err = errors.New("matrix auth is disabled")
			} else if after, ok := strings.CutPrefix(auth, "openid:"); ok {
				err = prov.checkFederatedMatrixAuth(r.Context(), userID, after)
			} else {
				err = prov.checkMatrixAuth(r.Context(), userID, auth)
			}
			if err != nil {
				zerolog.Ctx(r.Context()).Warn().Err(err).
					Msg("Provisioning API request contained invalid auth")
				mautrix.MUnknownToken.WithMessage("Invalid auth token").Write(w)
				return
			}
		}
		user, err := prov.br.Bridge.GetUserByMXID(r.Context(), userID)
		if err != nil {
			zerolog.Ctx(r.Context()).Err(err).Msg("Failed to get user")
			mautrix.MUnknown.WithMessage("Failed to get user").Write(w)
			return
		}
		// TODO handle user being nil?
		// TODO per-endpoint permissions?
		if !user.Permissions.Login {
			mautrix.MForbidden.WithMessage("User does not have login permissions").Write(w)
			return
		}
		origBody := r.Body
		r.GetBody = func() (io.ReadCloser, error) {
			return origBody, nil
		}
		r.Body = http.MaxBytesReader(w, origBody, 64*1024)

		ctx := context.WithValue(r.Context(), ProvisioningKeyRequest, r)
		ctx = context.WithValue(ctx, provisioningUserKey, user)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

type RespWhoami struct {
	Network       bridgev2.BridgeName  `json:"network"`
	LoginFlows    []bridgev2.LoginFlow `json:"login_flows"`
	Homeserver    string               `json:"homeserver"`
	BridgeBot     id.UserID            `json:"bridge_bot"`
	CommandPrefix string               `json:"command_prefix"`

	ManagementRoom id.RoomID         `json:"management_room,omitempty"`
	Logins         []RespWhoamiLogin `json:"logins"`
}

type RespWhoamiLogin struct {
	// Deprecated
	StateEvent status.BridgeStateEvent `json:"state_event"`
	// Deprecated
	StateTS jsontime.Unix `json:"state_ts"`
	// Deprecated
	StateReason string `json:"state_reason,omitempty"`
	// Deprecated
	StateInfo map[string]any `json:"state_info,omitempty"`

	State     status.BridgeState    `json:"state"`
	ID        networkid.UserLoginID `json:"id"`
	Name      string                `json:"name"`
	Profile   status.RemoteProfile  `json:"profile"`
	SpaceRoom id.RoomID             `json:"space_room,omitempty"`
}

func (prov *ProvisioningAPI) GetWhoami(w http.ResponseWriter, r *http.Request) {
	user := prov.GetUser(r)
	resp := &RespWhoami{
		Network:        prov.br.Bridge.Network.GetName(),
		LoginFlows:     prov.br.Bridge.Network.GetLoginFlows(),
		Homeserver:     prov.br.AS.HomeserverDomain,
		BridgeBot:      prov.br.Bot.UserID,
		CommandPrefix:  prov.br.Config.Bridge.CommandPrefix,
		ManagementRoom: user.ManagementRoom,
	}
	logins := user.GetUserLogins()
	resp.Logins = make([]RespWhoamiLogin, len(logins))
	for i, login := range logins {
		prevState := login.BridgeState.GetPrevUnsent()
		// Clear redundant fields
		prevState.UserID = ""
		prevState.RemoteID = ""
		prevState.RemoteName = ""
		prevState.RemoteProfile = status.RemoteProfile{}
		resp.Logins[i] = RespWhoamiLogin{
			StateEvent:  prevState.StateEvent,
			StateTS:     prevState.Timestamp,
			StateReason: prevState.Reason,
			StateInfo:   prevState.Info,
			State:       prevState,

			ID:        login.ID,
			Name:      login.RemoteName,
			Profile:   login.RemoteProfile,
			SpaceRoom: login.SpaceRoom,
		}
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

type RespLoginFlows struct {
	Flows []bridgev2.LoginFlow `json:"flows"`
}

type RespSubmitLogin struct {
	LoginID string `json:"login_id"`
	*bridgev2.LoginStep
}

func (prov *ProvisioningAPI) GetLoginFlows(w http.ResponseWriter, r *http.Request) {
	exhttp.WriteJSONResponse(w, http.StatusOK, &RespLoginFlows{
		Flows: prov.net.GetLoginFlows(),
	})
}

func (prov *ProvisioningAPI) GetCapabilities(w http.ResponseWriter, r *http.Request) {
	exhttp.WriteJSONResponse(w, http.StatusOK, &prov.net.GetCapabilities().Provisioning)
}

func (prov *ProvisioningAPI) PostLogout(w http.ResponseWriter, r *http.Request) {
	user := prov.GetUser(r)
	userLoginID := networkid.UserLoginID(r.PathValue("loginID"))
	if userLoginID == "all" {
		for {
			login := user.GetDefaultLogin()
			if login == nil {
				break
			}
			login.Logout(r.Context())
		}
	} else {
		userLogin := prov.br.Bridge.GetCachedUserLoginByID(userLoginID)
		if userLogin == nil || userLogin.UserMXID != user.MXID {
			mautrix.MNotFound.WithMessage("Login not found").Write(w)
			return
		}
		userLogin.Logout(r.Context())
	}
	exhttp.WriteEmptyJSONResponse(w, http.StatusOK)
}

type RespGetLogins struct {
	LoginIDs []networkid.UserLoginID `json:"login_ids"`
}

func (prov *ProvisioningAPI) GetLogins(w http.ResponseWriter, r *http.Request) {
	user := prov.GetUser(r)
	exhttp.WriteJSONResponse(w, http.StatusOK, &RespGetLogins{LoginIDs: user.GetUserLoginIDs()})
}

func (prov *ProvisioningAPI) GetExplicitLoginForRequest(w http.ResponseWriter, r *http.Request) (*bridgev2.UserLogin, bool) {
	userLoginID := networkid.UserLoginID(r.URL.Query().Get("login_id"))
	if userLoginID == "" {
		return nil, false
	}
	userLogin := prov.br.Bridge.GetCachedUserLoginByID(userLoginID)
	if userLogin == nil || userLogin.UserMXID != prov.GetUser(r).MXID {
		hlog.FromRequest(r).Warn().
			Str("login_id", string(userLoginID)).
			Msg("Tried to use non-existent login, returning 404")
		mautrix.MNotFound.WithMessage("Login not found").Write(w)
		return nil, true
	}
	return userLogin, false
}

var ErrNotLoggedIn = mautrix.RespError{
	Err:        "Not logged in",
	ErrCode:    "FI.MAU.NOT_LOGGED_IN",
	StatusCode: http.StatusBadRequest,
}

func (prov *ProvisioningAPI) GetLoginForRequest(w http.ResponseWriter, r *http.Request) *bridgev2.UserLogin {
	userLogin, failed := prov.GetExplicitLoginForRequest(w, r)
	if userLogin != nil || failed {
		return userLogin
	}
	userLogin = prov.GetUser(r).GetDefaultLogin()
	if userLogin == nil {
		ErrNotLoggedIn.Write(w)
		return nil
	}
	return userLogin
}

type WritableError interface {
	error
	Write(w http.ResponseWriter)
}

func RespondWithError(w http.ResponseWriter, err error, message string) {
	if we, ok := errors.AsType[WritableError](err); ok {
		we.Write(w)
	} else if errors.Is(err, bridgev2.ErrNotLoggedIn) {
		mautrix.MForbidden.WithMessage("Login is not logged in").Write(w)
	} else {
		mautrix.MUnknown.WithMessage(message).WithInternalError(err).Write(w)
	}
}

func (prov *ProvisioningAPI) PostViewLimitedMedia(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	var request struct {
		Limit *event.BeeperViewLimitedMedia `json:"com.beeper.view_limited"`
	}
	err := json.NewDecoder(r.Body).Decode(&request)
	if err != nil {
		zerolog.Ctx(r.Context()).Err(err).Msg("Failed to decode request body")
		mautrix.MNotJSON.WithMessage("Failed to decode request body").Write(w)
		return
	}
	if err := prov.br.Bridge.ViewLimitedMedia(r.Context(), login, id.EventID(r.PathValue("eventID")), request.Limit); err != nil {
		RespondWithError(w, err, "Failed to open media")
		return
	}
	exhttp.WriteEmptyJSONResponse(w, http.StatusOK)
}

func (prov *ProvisioningAPI) GetPollResults(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.FetchPollResults(r.Context(), login, id.EventID(r.PathValue("eventID")))
	if err != nil {
		RespondWithError(w, err, "Failed to fetch poll results")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) doResolveIdentifier(w http.ResponseWriter, r *http.Request, createChat bool) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.ResolveIdentifier(r.Context(), login, r.PathValue("identifier"), createChat)
	if err != nil {
		RespondWithError(w, err, "Internal error resolving identifier")
	} else if resp == nil {
		mautrix.MNotFound.WithMessage("Identifier not found").Write(w)
	} else {
		status := http.StatusOK
		if resp.JustCreated {
			status = http.StatusCreated
		}
		exhttp.WriteJSONResponse(w, status, resp)
	}
}

func (prov *ProvisioningAPI) GetContactList(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.GetContactList(r.Context(), login)
	if err != nil {
		RespondWithError(w, err, "Internal error getting contact list")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

type ReqSearchUsers struct {
	Query string `json:"query"`
}

func (prov *ProvisioningAPI) PostSearchUsers(w http.ResponseWriter, r *http.Request) {
	var req ReqSearchUsers
	err := json.NewDecoder(r.Body).Decode(&req)
	if err != nil {
		zerolog.Ctx(r.Context()).Err(err).Msg("Failed to decode request body")
		mautrix.MNotJSON.WithMessage("Failed to decode request body").Write(w)
		return
	}
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.SearchUsers(r.Context(), login, req.Query)
	if err != nil {
		RespondWithError(w, err, "Internal error searching users")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) GetResolveIdentifier(w http.ResponseWriter, r *http.Request) {
	prov.doResolveIdentifier(w, r, false)
}

func (prov *ProvisioningAPI) PostCreateDM(w http.ResponseWriter, r *http.Request) {
	prov.doResolveIdentifier(w, r, true)
}

func (prov *ProvisioningAPI) PostCreateGroup(w http.ResponseWriter, r *http.Request) {
	var req bridgev2.GroupCreateParams
	err := json.NewDecoder(r.Body).Decode(&req)
	if err != nil {
		zerolog.Ctx(r.Context()).Err(err).Msg("Failed to decode request body")
		mautrix.MNotJSON.WithMessage("Failed to decode request body").Write(w)
		return
	}
	req.Type = r.PathValue("type")
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.CreateGroup(r.Context(), login, &req)
	if err != nil {
		RespondWithError(w, err, "Internal error creating group")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) PostUpdateProfile(w http.ResponseWriter, r *http.Request) {
	login, failed := prov.GetExplicitLoginForRequest(w, r)
	if failed {
		return
	} else if login == nil {
		mautrix.MInvalidParam.WithMessage("login_id is required").Write(w)
		return
	}
	var req bridgev2.ProfileUpdateParams
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		mautrix.MNotJSON.WithMessage("Failed to decode request body").Write(w)
		return
	}
	if err := provisionutil.UpdateProfile(r.Context(), login, &req); err != nil {
		RespondWithError(w, err, "Failed to update profile")
		return
	}
	exhttp.WriteEmptyJSONResponse(w, http.StatusOK)
}

func (prov *ProvisioningAPI) PostPaginate(w http.ResponseWriter, r *http.Request) {
	if !prov.br.Capabilities.BatchSending {
		mautrix.MUnrecognized.WithMessage("Homeserver does not support batch sending historical messages").Write(w)
		return
	} else if !prov.br.Config.Backfill.Queue.Manual {
		mautrix.MUnrecognized.WithMessage("Manual backfill is not enabled").Write(w)
		return
	}
	log := zerolog.Ctx(r.Context())
	targetRoomID := id.RoomID(r.PathValue("roomID"))
	portal, err := prov.br.Bridge.GetPortalByMXID(r.Context(), targetRoomID)
	if err != nil {
		log.Err(err).Msg("Failed to get portal for pagination")
		RespondWithError(w, err, "Internal error getting portal")
	} else if portal == nil {
		log.Debug().Stringer("target_room_id", targetRoomID).Msg("Paginate requested for unknown portal room")
		mautrix.MNotFound.WithMessage("Portal not found").Write(w)
	} else if login, _, err := portal.FindPreferredLogin(r.Context(), prov.GetUser(r), false); errors.Is(err, bridgev2.ErrNotLoggedIn) {
		log.Debug().Err(err).Msg("Paginate requested without a logged in login for portal")
		RespondWithError(w, err, "Internal error getting login for portal")
	} else if err != nil {
		log.Err(err).Msg("Failed to get login for pagination")
		RespondWithError(w, err, "Internal error getting login for portal")
	} else if task, err := prov.br.Bridge.DB.BackfillTask.GetNextForPortal(r.Context(), portal.PortalKey, false); err != nil {
		log.Err(err).Msg("Failed to get backfill task for portal")
		RespondWithError(w, err, "Internal error getting backfill task")
	} else if task == nil {
		log.Debug().Msg("No backfill task found for portal")
		w.WriteHeader(http.StatusNoContent)
	} else {
		log.Info().
			Object("portal_key", portal.PortalKey).
			Any("current_backfill_task", task).
			Msg("Sending manual backfill request to backfill queue")
		doneChan := make(chan error, 1)
		var done atomic.Bool
		prov.br.Bridge.WakeupBackfillQueue(&bridgev2.ManualBackfill{
			Source:     login,
			Portal:     portal,
			LogContext: copyRequestIDToLogContext(r),
			DoneCallback: func(err error) {
				if done.Swap(true) {
					log.Warn().Err(err).Msg("Backfill done callback called multiple times, ignoring")
					return
				}
				log.Debug().Msg("Backfill done callback called, sending result to channel")
				doneChan <- err
				close(doneChan)
			},
		})
		select {
		case err = <-doneChan:
			if errors.Is(err, bridgev2.ErrNotLoggedIn) {
				log.Debug().Msg("Login logged out while backfilling, returning forbidden")
				mautrix.MForbidden.WithMessage("Login is not logged in").Write(w)
			} else if err != nil {
				RespondWithError(w, err, "Internal error backfilling")
			} else {
				exhttp.WriteEmptyJSONResponse(w, http.StatusOK)
			}
		case <-time.After(25 * time.Second):
			log.Warn().Msg("Backfill did not complete within 25 seconds, returning timeout")
			ErrBridgeBackfillTimeout.WithMessage("Backfill did not complete within 25 seconds").Write(w)
		case <-r.Context().Done():
			log.Warn().Msg("Request cancelled while waiting for backfill to complete")
		}
	}
}

func (prov *ProvisioningAPI) ImportImagePack(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	var resp any
	var err error
	if r.Method == http.MethodPost {
		resp, err = provisionutil.ImportImagePack(r.Context(), login, r.URL.Query().Get("pack_url"))
	} else {
		resp, err = provisionutil.PreviewImagePack(r.Context(), login, r.URL.Query().Get("pack_url"))
	}
	if err != nil {
		RespondWithError(w, err, "Internal error importing image pack")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) ListImagePacks(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	resp, err := provisionutil.ListImagePacks(r.Context(), login)
	if err != nil {
		RespondWithError(w, err, "Internal error listing image packs")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) PostResolveMedia(w http.ResponseWriter, r *http.Request) {
	login := prov.GetLoginForRequest(w, r)
	if login == nil {
		return
	}
	var params provisionutil.ReqResolveMedia
	err := json.NewDecoder(r.Body).Decode(&params)
	if err != nil {
		zerolog.Ctx(r.Context()).Err(err).Msg("Failed to decode request body")
		mautrix.MNotJSON.WithMessage("Failed to decode request body").Write(w)
		return
	}
	resp, err := provisionutil.ResolveMedia(r.Context(), login, id.EventID(r.PathValue("eventID")), &params)
	if err != nil {
		RespondWithError(w, err, "Internal error resolving media")
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, resp)
}

func (prov *ProvisioningAPI) DeleteDirectMediaKeys(w http.ResponseWriter, r *http.Request) {
	mediaIDStr := r.PathValue("mediaID")
	mediaIDStr = strings.TrimPrefix(mediaIDStr, prov.br.Config.DirectMedia.MediaIDPrefix)
	err := prov.br.Bridge.DB.EncryptedDirectMedia.MarkHandled(r.Context(), mediaIDStr)
	if err != nil {
		mautrix.MUnknown.WithMessage("Failed to mark media as handled").WithInternalError(err).Write(w)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
}
