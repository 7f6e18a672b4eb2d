// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SupraCatalogue
/// @notice The market's offer catalogue (issue 14): a seller announces each stream it sells (topic filter,
///         price and currency, terms, peer endpoint, a short description), may update the ad and withdraw
///         it. Any broker pointed at the chain lists the live offers from this contract's events, with no
///         peer connection: the live ads are, per stream id, the latest {Announced} not followed by a
///         {Withdrawn}.
/// @dev Events only: the contract stores nothing. Who may announce, update or withdraw a stream's ad needs no
///      storage either, because a stream id encodes its seller (docs/PROTOCOL.md section 1: the seller's
///      address in the high 20 bytes, a stream number in the low 12), so the only rule is
///      `msg.sender == address(bytes20(streamId))`, the same the judge applies to offers. An ad is a
///      listing, not a commitment: the binding terms are those of the seller's signed `Offer` at the
///      handshake, which the buyer checks against its own limits (price, currency) before opening a channel
///      on {JUDGE}.
contract SupraCatalogue {
    /// @notice One stream's advertisement.
    struct Ad {
        /// The stream sold; its high 20 bytes are the seller.
        bytes32 streamId;
        /// MQTT topic filter of the stream (what a buyer requests at the handshake).
        string topicFilter;
        /// Price per message in the smallest unit of `token`.
        uint256 price;
        /// The currency: an ERC-20 token, or address(0) for ETH.
        address token;
        /// W: most messages in flight without an ack.
        uint64 window;
        /// T_ack, seconds.
        uint32 tAck;
        /// T_closure, seconds.
        uint32 tClosure;
        /// Where the seller's broker takes peer links (`host:port`).
        string endpoint;
        /// A short free-text description.
        string description;
    }

    /// @notice Longest topic filter accepted, in bytes.
    uint256 public constant MAX_TOPIC_BYTES = 256;
    /// @notice Longest endpoint accepted, in bytes.
    uint256 public constant MAX_ENDPOINT_BYTES = 128;
    /// @notice Longest description accepted, in bytes.
    uint256 public constant MAX_DESCRIPTION_BYTES = 280;

    /// @notice The judge whose channels the advertised streams are sold through.
    address public immutable JUDGE;

    /// @notice The seller announced (or updated: same event, the latest wins) the ad of `streamId`.
    event Announced(bytes32 indexed streamId, address indexed seller, Ad ad);

    /// @notice The seller withdrew the ad of `streamId`.
    event Withdrawn(bytes32 indexed streamId, address indexed seller);

    /// @notice `caller` is not `seller`, the seller encoded in the stream id.
    error NotSeller(address caller, address seller);
    /// @notice The topic filter is empty or longer than {MAX_TOPIC_BYTES} (`max`).
    error BadTopicFilter(uint256 length, uint256 max);
    /// @notice The endpoint is empty or longer than {MAX_ENDPOINT_BYTES} (`max`).
    error BadEndpoint(uint256 length, uint256 max);
    /// @notice The description is longer than {MAX_DESCRIPTION_BYTES} (`max`).
    error DescriptionTooLong(uint256 length, uint256 max);
    /// @notice The price, window, T_ack or T_closure is zero (the judge would refuse any such offer).
    error InvalidTerms(uint256 price, uint64 window, uint32 tAck, uint32 tClosure);

    /// @param judge The judge contract (see {JUDGE}).
    constructor(address judge) {
        JUDGE = judge;
    }

    /// @notice Announces the ad of `ad.streamId`, or replaces the previous one (update).
    /// @dev Caller must be the stream's seller ({NotSeller}); topic filter and endpoint non-empty and within
    ///      their bounds, description within its bound; non-zero terms. Emits {Announced}.
    /// @param ad The ad.
    function announce(Ad calldata ad) external {
        _onlySeller(ad.streamId);
        uint256 n = bytes(ad.topicFilter).length;
        if (n == 0 || n > MAX_TOPIC_BYTES) revert BadTopicFilter(n, MAX_TOPIC_BYTES);
        n = bytes(ad.endpoint).length;
        if (n == 0 || n > MAX_ENDPOINT_BYTES) revert BadEndpoint(n, MAX_ENDPOINT_BYTES);
        n = bytes(ad.description).length;
        if (n > MAX_DESCRIPTION_BYTES) revert DescriptionTooLong(n, MAX_DESCRIPTION_BYTES);
        if (ad.price == 0 || ad.window == 0 || ad.tAck == 0 || ad.tClosure == 0) {
            revert InvalidTerms(ad.price, ad.window, ad.tAck, ad.tClosure);
        }
        emit Announced(ad.streamId, msg.sender, ad);
    }

    /// @notice Withdraws the ad of `streamId`: it is no longer listed (until announced again).
    /// @dev Caller must be the stream's seller ({NotSeller}). Emits {Withdrawn}.
    /// @param streamId The stream.
    function withdraw(bytes32 streamId) external {
        _onlySeller(streamId);
        emit Withdrawn(streamId, msg.sender);
    }

    /// @dev The seller of a stream is the high 20 bytes of its id.
    function _onlySeller(bytes32 streamId) private view {
        address seller = address(bytes20(streamId));
        if (msg.sender != seller) revert NotSeller(msg.sender, seller);
    }
}
